"""Stage commit and resume, failures named by stage, parallel stages really overlapping."""

import time
from pathlib import Path

import pytest

from ipo_ray.config import Config
from ipo_ray.data import make_table, write_table
from ipo_ray.loop.artifacts import overlap_ratio
from ipo_ray.loop.driver import StageError, run_parallel, run_stage
from ipo_ray.loop.run_dir import RunDir
from ipo_ray.loop.stages import RoundContext, StageResult


def _ctx(tmp_path: Path) -> RoundContext:
    return RoundContext(Config(), RunDir(tmp_path / "run"), 1, tmp_path, tmp_path, "v1", tmp_path, None)


def test_a_committed_stage_is_not_run_again(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    calls = []

    def stage(c: RoundContext) -> StageResult:
        calls.append(1)
        (c.dir("s") / "out.txt").write_text("x")
        return StageResult({"rows": 3}, {"out": c.run.relative(c.dir("s") / "out.txt")})

    first = run_stage(ctx, "s", stage)
    again = run_stage(ctx, "s", stage)
    assert calls == [1]
    assert again == first and again.metrics == {"rows": 3} and again.outputs == {"out": "round-1/s/out.txt"}
    assert [r.stage for r in ctx.run.records()] == ["s"]


def test_a_failing_stage_is_named_and_not_committed(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)

    def broken(c: RoundContext) -> StageResult:
        raise OSError("disk full")

    with pytest.raises(StageError, match=r"round 1, stage 'label' failed: OSError: disk full"):
        run_stage(ctx, "label", broken)
    assert not ctx.run.is_done(1, "label")
    # The retry (what --resume does) runs it again.
    assert run_stage(ctx, "label", lambda c: StageResult({"ok": 1})).metrics == {"ok": 1}


def test_parallel_stages_overlap_and_a_failure_keeps_the_other(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)

    def sleepy(c: RoundContext) -> StageResult:
        time.sleep(0.5)
        return StageResult()

    records = run_parallel(ctx, {"align": sleepy, "refresh": sleepy}, overlap=True)
    assert overlap_ratio(list(records.values())) > 1.6

    def broken(c: RoundContext) -> StageResult:
        raise ValueError("bad labels")

    ctx2 = RoundContext(Config(), ctx.run, 2, tmp_path, tmp_path, "v1", tmp_path, None)
    with pytest.raises(StageError, match="refresh"):
        run_parallel(ctx2, {"align": sleepy, "refresh": broken}, overlap=True)
    assert ctx.run.is_done(2, "align") and not ctx.run.is_done(2, "refresh")


def test_an_interrupted_stage_that_wrote_a_committed_table_is_redone_cleanly(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    table = make_table([{"prompt_id": "p1", "text": "a", "source": "x"}], "prompts")
    attempts = []

    def label(c: RoundContext) -> StageResult:
        attempts.append(1)
        write_table(table, c.dir("label") / "prompts.parquet", "prompts")
        if len(attempts) == 1:
            raise RuntimeError("killed after the table was committed")
        return StageResult({"rows": 1})

    with pytest.raises(StageError):
        run_stage(ctx, "label", label)
    # The committed table of the failed attempt does not block the retry.
    assert run_stage(ctx, "label", label).metrics == {"rows": 1}
