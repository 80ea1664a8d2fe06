"""Production evaluation without Ray: critic aggregation, evaluation prompts, set-up errors, the table."""

import importlib.util
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from ipo_ray.config import Config
from ipo_ray.data import columns as col
from ipo_ray.data import make_table, write_table
from ipo_ray.loop.labelling import label_pointwise
from ipo_ray.loop.production_eval import (
    EvaluationSetupError,
    check_evaluation,
    critic_metrics,
    evaluation_prompts,
)
from ipo_ray.loop.report import round_table
from ipo_ray.loop.run_dir import StageRecord
from ipo_ray.loop.vbench_full import VBenchSetupError
from ipo_ray.vocab import DIMENSIONS

WAN = {"backend": "wan", "model_path": "/nowhere", "height": 16, "width": 16, "num_frames": 9}


def _wan_config(**evaluation: object) -> Config:
    """A wan config (no real-videos term, which would need a table) with these evaluation settings."""
    return Config.model_validate(
        {"generator": WAN, "align": {"lambda_real": 0}, "loop": {"evaluation": evaluation}}
    )


def _judgement(votes: dict[str, int]) -> dict:
    top = max(votes.values())
    leaders = [v for v, c in votes.items() if c == top]
    return {
        "votes": votes,
        "verdict": leaders[0] if top > 0 and len(leaders) == 1 else None,
        "reason": "",
        "certainty": 1.0,
        "unparseable": 3 - sum(votes.values()),
        "samples": 3,
        "answers": [],
    }


def _clips(n: int) -> pa.Table:
    return pa.table(
        {
            col.CANDIDATE_ID: [f"c{i}" for i in range(n)],
            col.PROMPT: [f"prompt {i}" for i in range(n)],
            col.VIDEO_PATH: [f"videos/c{i}.mp4" for i in range(n)],
        }
    )


def test_rewards_follow_the_first_token_read_where_the_critic_reads_so(tmp_path: Path) -> None:
    """critic.vote=first_token: a judgement's reward is LiFT's in expectation over its first-token
    probabilities, not over the sampled votes; where the read found no verdict token, the votes."""
    read = {"Good": 0.5, "Normal": 0.5, "Bad": 0.0}
    judged = _judgement({"Good": 0, "Normal": 0, "Bad": 3}) | {"probabilities": read, "verdict": "Good"}
    unread = _judgement({"Good": 0, "Normal": 3, "Bad": 0}) | {"probabilities": {}}
    by_clip = {"c0": judged, "c1": unread}
    labelled = label_pointwise(
        lambda path, prompt: {"dimensions": dict.fromkeys(DIMENSIONS, by_clip[Path(path).stem])},
        _clips(2),
        tmp_path,
        "default",
    )
    assert labelled.point_votes["c0"]["faithfulness"] == read
    assert labelled.point_votes["c1"]["faithfulness"] == {"Good": 0, "Normal": 3, "Bad": 0}
    reward = (0.5 * 0.9 + 0.5 * 0.2 + 0.2) / 2
    assert critic_metrics(labelled)["eval/critic/reward"] == pytest.approx(reward)


def test_critic_metrics_average_lift_rewards_and_count_good_majorities(tmp_path: Path) -> None:
    votes = {
        "c0": {"Good": 3, "Normal": 0, "Bad": 0},  # reward 0.9, Good
        "c1": {"Good": 1, "Normal": 2, "Bad": 0},  # reward (0.9 + 2·0.2)/3, Normal
        "c2": {"Good": 0, "Normal": 0, "Bad": 0},  # nothing parsed: no reward, not Good
    }
    # The stub answers every dimension alike, through the label stage's own code.
    labelled = label_pointwise(
        lambda path, prompt: {"dimensions": {d: _judgement(votes[Path(path).stem]) for d in DIMENSIONS}},
        _clips(3),
        tmp_path,
        "default",
    )
    metrics = critic_metrics(labelled)
    reward = (0.9 + (0.9 + 2 * 0.2) / 3) / 2  # LiFT: Good 0.9, Normal 0.2, Bad 0.05
    for d in DIMENSIONS:
        assert metrics[f"eval/critic/{d}/reward"] == pytest.approx(reward)
        assert metrics[f"eval/critic/{d}/good_share"] == pytest.approx(1 / 3)
    assert metrics["eval/critic/reward"] == pytest.approx(reward)
    assert metrics["eval/critic/good_share"] == pytest.approx(1 / 3)


def test_evaluation_prompts_are_the_files_first_rows_or_held_out_round_zero(tmp_path: Path) -> None:
    rows = [{col.PROMPT_ID: f"f{i}", col.TEXT: f"text {i}", col.SOURCE: "file"} for i in range(5)]
    path = tmp_path / "prompts.parquet"
    write_table(make_table(rows, "prompts"), path, "prompts")
    cfg = _wan_config(num_prompts=3, prompts_file=str(path))
    assert evaluation_prompts(cfg)[col.PROMPT_ID].to_pylist() == ["f0", "f1", "f2"]
    cfg = _wan_config(num_prompts=2)
    first, again = evaluation_prompts(cfg), evaluation_prompts(cfg)
    assert first.equals(again)
    assert all(p.startswith("r0-") for p in first[col.PROMPT_ID].to_pylist())  # no training round is 0


def test_a_short_or_missing_prompts_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    rows = [{col.PROMPT_ID: "f0", col.TEXT: "text", col.SOURCE: "file"}]
    path = tmp_path / "prompts.parquet"
    write_table(make_table(rows, "prompts"), path, "prompts")
    for prompts_file in (str(path), str(tmp_path / "missing.parquet")):
        cfg = _wan_config(num_prompts=2, prompts_file=prompts_file)
        with pytest.raises(EvaluationSetupError, match="loop.evaluation.prompts_file"):
            check_evaluation(cfg)
        check_evaluation(cfg, needs_prompts=False)  # a resumed run chose its prompts already


def test_full_vbench_not_asked_needs_nothing() -> None:
    check_evaluation(_wan_config())


@pytest.mark.skipif(importlib.util.find_spec("vbench") is not None, reason="vbench is installed here")
def test_full_vbench_without_the_package_is_refused_before_the_run(tmp_path: Path) -> None:
    evaluation = {"vbench": True, "vbench_weights": str(tmp_path)}
    cfg = _wan_config(**evaluation)
    with pytest.raises(VBenchSetupError, match="`vbench` package is not installed"):
        check_evaluation(cfg)


def test_full_vbench_without_its_weights_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "vbench" else real_find_spec(name, *a),
    )
    evaluation = {"vbench": True, "vbench_weights": str(tmp_path / "absent")}
    cfg = _wan_config(**evaluation)
    with pytest.raises(VBenchSetupError, match="loop.evaluation.vbench_weights"):
        check_evaluation(cfg)


@pytest.mark.parametrize(
    ("settings", "generator", "key"),
    [
        ({"vbench": True}, WAN, "vbench_weights"),
        ({"vbench": True, "vbench_weights": "/w"}, {}, "loop.evaluation.vbench"),
        ({"prompts_file": "/p.parquet"}, {}, "loop.evaluation.prompts_file"),
    ],
)
def test_bad_evaluation_config_is_refused_at_load(settings: dict, generator: dict, key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        Config.model_validate({"generator": generator, "loop": {"evaluation": settings}})


def test_the_round_table_prints_production_evaluation_in_place_of_the_benchmark() -> None:
    metrics = {
        "eval/temporal_flickering": 0.9712,
        "eval/critic/reward": 0.6123,
        "eval/critic/good_share": 0.25,
    }
    table = round_table(
        [StageRecord(round=0, stage="evaluate", metrics=metrics, outputs={}, start=0.0, end=1.0)]
    )
    header, row = table.splitlines()
    assert header.split()[1:4] == ["Flick", "Reward", "Good%"]
    assert row.split()[1:4] == ["97.1", "0.612", "25.0"]
