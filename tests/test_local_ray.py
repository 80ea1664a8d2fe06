"""`ipo_ray.local_ray`: the environment of a Ray cluster the project starts itself."""

import logging
import os

import pytest

from ipo_ray.local_ray import LOCAL_RAY_ENV, set_local_ray_env


def test_local_ray_env_fills_unset_variables_and_keeps_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LOCAL_RAY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "90")
    set_local_ray_env()
    assert os.environ["RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"] == "90"  # the user's value wins
    assert os.environ["RAY_AUTH_MODE"] == "disabled"
    # Serve's proxy checks: longer than Ray's 5 s, which killed the proxy on a busy 2-core machine.
    assert float(os.environ["RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S"]) >= 30


def test_a_local_cluster_quiets_the_state_api_warners_in_its_workers() -> None:
    import ray

    from ipo_ray.local_ray import STATE_API_WARNERS, start_or_join_ray

    @ray.remote(num_cpus=0)
    def levels() -> list[int]:
        return [logging.getLogger(name).getEffectiveLevel() for name in STATE_API_WARNERS]

    assert not ray.is_initialized()
    start_or_join_ray(1, log_to_driver=False)
    try:
        assert ray.get(levels.remote()) == [logging.ERROR] * len(STATE_API_WARNERS)
        assert logging.getLogger(STATE_API_WARNERS[0]).getEffectiveLevel() < logging.ERROR  # driver as is
    finally:
        ray.shutdown()
