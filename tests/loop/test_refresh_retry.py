"""The SRPO refresh runs Ray Train once more when a run fails as a whole (a ControllerError)."""

import pytest
import ray.train

from ipo_ray.critic.train_loop import TrainPlan
from ipo_ray.loop import refresh


def _plan() -> TrainPlan:
    return TrainPlan(init_dir="critic", labels_path="labels.parquet", out_dir="out")


def test_a_controller_error_gets_one_more_run(monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []

    def fit(
        plan: TrainPlan,
        workers: int,
        cpus: float,
        storage: str,
        name: str,
        max_failures: int,
        gpus_per_worker: float,
    ) -> None:
        names.append(name)
        if len(names) == 1:
            raise ray.train.ControllerError(RuntimeError("a worker died while the group started"))

    monkeypatch.setattr(refresh, "fit_with_ray", fit)
    refresh._fit_with_retry(_plan(), 1, 0.5, 0.0, "/tmp/ray", "critic-r1")
    assert names == ["critic-r1", "critic-r1-retry1"]


def test_a_second_failure_stops_the_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    def fit(*args: object, **kwargs: object) -> None:
        raise ray.train.ControllerError(RuntimeError("down again"))

    monkeypatch.setattr(refresh, "fit_with_ray", fit)
    with pytest.raises(ray.train.ControllerError):
        refresh._fit_with_retry(_plan(), 1, 0.5, 0.0, "/tmp/ray", "critic-r1")


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fit(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise ValueError("bad plan")

    monkeypatch.setattr(refresh, "fit_with_ray", fit)
    with pytest.raises(ValueError, match="bad plan"):
        refresh._fit_with_retry(_plan(), 1, 0.5, 0.0, "/tmp/ray", "critic-r1")
    assert calls == [1]
