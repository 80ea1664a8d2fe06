"""The round loop: runs each stage once, commits it, and resumes at the first stage not committed.

`run_rounds` is the whole job once Ray, the critic app and tracking are up (`jobs/dual_ipo.py` sets
those up). Round 0 evaluates the base generator; rounds 1..R run `stages.ROUND_STAGES`, with the
critic refresh running at the same time as generator alignment when ``loop.overlap`` is on (two
driver threads, each blocking on its own Ray work: the Train workers and the critic's training
task hold separate CPU shares from the config, so they really run together).

Versions: round k samples with generator v(k) (round k-1's aligned model, or the base for k = 1)
and labels with critic v(k) (round k-1's refreshed critic, or the base critic); both come from the
committed stage manifests, so a resumed job picks up exactly the versions it had.
"""

import logging
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ipo_ray.loop.run_dir import StageRecord, now
from ipo_ray.loop.stages import ALIGN, EVALUATE, REFRESH, START_CLEAN, RoundContext, StageResult

log = logging.getLogger(__name__)


class StageError(RuntimeError):
    """A stage failed; the message names the round and stage, and `--resume` continues from it."""


def run_stage(ctx: RoundContext, stage: str, fn: Callable[[RoundContext], StageResult]) -> StageRecord:
    """Runs a stage unless it is committed; commits what it returns.

    Raises:
        StageError: The stage raised; nothing of it is committed.
    """
    if ctx.run.is_done(ctx.round, stage):
        log.info("round %d %s: done earlier, skipped", ctx.round, stage)
        return ctx.run.record(ctx.round, stage)
    if stage in START_CLEAN:
        # What an interrupted attempt left (committed tables are immutable) is redone from scratch.
        shutil.rmtree(ctx.run.path / f"round-{ctx.round}" / stage, ignore_errors=True)
    start = now()
    log.info("round %d %s: started", ctx.round, stage)
    try:
        result = fn(ctx)
    except Exception as error:
        raise StageError(
            f"round {ctx.round}, stage {stage!r} failed: {type(error).__name__}: {error}"
        ) from error
    record = StageRecord(ctx.round, stage, start, now(), result.metrics, result.outputs)
    ctx.run.commit(record)
    log.info("round %d %s: done in %.1f s", ctx.round, stage, record.seconds)
    return record


def run_parallel(
    ctx: RoundContext, stages: dict[str, Callable[[RoundContext], StageResult]], overlap: bool
) -> dict[str, StageRecord]:
    """Runs independent stages at the same time (threads) or one after the other.

    Every stage runs to its end even if another fails, so what finished is committed; then the first
    failure is raised.
    """
    if not overlap:
        return {name: run_stage(ctx, name, fn) for name, fn in stages.items()}
    with ThreadPoolExecutor(len(stages), thread_name_prefix="stage") as pool:
        futures = {name: pool.submit(run_stage, ctx, name, fn) for name, fn in stages.items()}
        errors = [f.exception() for f in futures.values() if f.exception() is not None]
        if errors:
            raise errors[0]
        return {name: f.result() for name, f in futures.items()}


def next_versions(ctx: RoundContext, records: dict[str, StageRecord]) -> RoundContext:
    """The context of round k+1: its generator is round k's aligned model, its critic the refreshed one."""
    align, refresh = records[ALIGN], records[REFRESH]
    generator = ctx.run.path / align.outputs["generator"]
    critic_version, critic_path = ctx.critic_version, ctx.critic_path
    if "critic" in refresh.outputs:
        critic_version = refresh.metrics["critic_version"]
        critic_path = ctx.run.path / refresh.outputs["critic"]
    reference = generator if ctx.cfg.align.reference_mode == "iterative" else ctx.reference_path
    return replace(
        ctx,
        round=ctx.round + 1,
        generator_path=generator,
        reference_path=reference,
        critic_version=critic_version,
        critic_path=critic_path,
    )


def evaluate_path(ctx: RoundContext, records: dict[str, StageRecord]) -> Path:
    return ctx.run.path / records[ALIGN].outputs["generator"]


__all__ = ["EVALUATE", "StageError", "next_versions", "run_parallel", "run_stage"]
