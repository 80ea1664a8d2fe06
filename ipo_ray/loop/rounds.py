"""Rounds 0..R: the stages in order, versions handed from round to round, tracking after each round.

Round 0 encodes the real videos of the λ2 term when it is on (`real_videos`) and evaluates the base
generator. Round k runs prompts → generate → label → preferences →
(align ‖ refresh) → evaluate (`stages`, `driver`), then logs the round to MLflow: every stage's
metrics, the artifacts of `artifacts` (among them the evaluation grid, round 0's evaluation clips
beside round k's), and the new generator and critic as registered versions.
"""

import logging
from dataclasses import replace
from pathlib import Path

from ipo_ray.config import Config
from ipo_ray.critic.serve.versions import register_version
from ipo_ray.data import columns as col
from ipo_ray.data import read_table
from ipo_ray.loop import artifacts, eval_clips
from ipo_ray.loop.driver import next_versions, run_parallel, run_stage
from ipo_ray.loop.real_videos import real_videos_stage
from ipo_ray.loop.refresh import refresh_stage
from ipo_ray.loop.report import round_table
from ipo_ray.loop.run_dir import RunDir, StageRecord
from ipo_ray.loop.stages import (
    ALIGN,
    BASE_CRITIC,
    EVALUATE,
    GENERATE,
    LABEL,
    PREFERENCES,
    PROMPTS,
    REAL,
    REFRESH,
    RoundContext,
    align_stage,
    base_generator_path,
    evaluate_generator_stage,
    generate_stage,
    label_stage,
    preferences_stage,
    prompts_stage,
    read_oracle,
    round_candidates,
)
from ipo_ray.loop.tracking import Tracker
from ipo_ray.world.benchmark import QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS

log = logging.getLogger(__name__)


def run_rounds(cfg: Config, run: RunDir, critic: object, base_critic: Path, tracker: Tracker | None) -> None:
    """Runs every round not yet committed in `run` (see the module docstring)."""
    base = base_generator_path(cfg)
    ctx = RoundContext(
        cfg,
        run,
        0,
        base,
        base,
        BASE_CRITIC,
        base_critic,
        critic,
        base_path=base,
        tracking_uri=tracker.tracking_uri if tracker else None,
    )
    ctx = replace(ctx, mlflow_run_id=tracker.round_run(0) if tracker else None)
    if cfg.align.uses_real:
        real = run_stage(ctx, REAL, real_videos_stage)
        if tracker:
            tracker.log_metrics(ctx.mlflow_run_id, {f"real/{k}": v for k, v in real.metrics.items()}, step=0)
    base_eval = run_stage(ctx, EVALUATE, lambda c: evaluate_generator_stage(c, base))
    if tracker:
        tracker.log_metrics(ctx.mlflow_run_id, base_eval.metrics, step=0)
    ctx = replace(ctx, round=1)
    for k in range(1, cfg.loop.rounds + 1):
        ctx = replace(ctx, round=k, mlflow_run_id=tracker.round_run(k) if tracker else None)
        if ctx.critic_version != BASE_CRITIC:
            # A resumed job's app starts with the base critic only; bring back the current version.
            register_version(ctx.critic_version, ctx.critic_path, cfg.serve.app_name)
        records = {
            stage: run_stage(ctx, stage, fn)
            for stage, fn in (
                (PROMPTS, prompts_stage),
                (GENERATE, generate_stage),
                (LABEL, label_stage),
                (PREFERENCES, preferences_stage),
            )
        }
        records |= run_parallel(ctx, {ALIGN: align_stage, REFRESH: refresh_stage}, cfg.loop.overlap)
        aligned = run.path / records[ALIGN].outputs["generator"]
        records[EVALUATE] = run_stage(
            ctx, EVALUATE, lambda c, path=aligned: evaluate_generator_stage(c, path)
        )
        if tracker:
            log_round(tracker, ctx, records)
        print(round_table(run.records()), flush=True)
        ctx = next_versions(ctx, records)


def _eval_grid(ctx: RoundContext, folder: Path) -> list[Path]:
    """``eval_grid.mp4``: per evaluation prompt, the base generator's clip | this round's (same seed).

    Empty (with a log line) when round 0's or this round's evaluate stage kept no clips: a run resumed
    from folders written before evaluate stages kept them.
    """
    base_dir, round_dir = ctx.run.stage_dir(0, EVALUATE), ctx.dir(EVALUATE)
    rows = eval_clips.paired(base_dir, round_dir, ctx.cfg.loop.video_grid_prompts)
    if rows is None:
        log.info(
            "round %d: no evaluation grid: %s or %s keeps no clips (%s; evaluated before clips were kept)",
            ctx.round,
            base_dir,
            round_dir,
            eval_clips.INDEX,
        )
        return []
    # World clips are 16 px: upscaled to be seen; full-size clips stay as they are.
    scale = 4 if ctx.cfg.generator.backend == "world" else 1
    return [artifacts.comparison_grid(folder / "eval_grid.mp4", rows, fps=4, scale=scale)]


def log_round(tracker: Tracker, ctx: RoundContext, records: dict[str, StageRecord]) -> None:
    """Metrics, artifacts and model versions of a finished round, into its MLflow run."""
    run_id, k = ctx.mlflow_run_id, ctx.round
    for stage, record in records.items():
        # Evaluation keys are namespaced already (bench/..., eval/...) and logged as such in round 0
        # too, so the base and every round form one series per metric.
        prefix = "" if stage == EVALUATE else f"{stage}/"
        numeric = {f"{prefix}{key}": v for key, v in record.metrics.items() if isinstance(v, (int, float))}
        tracker.log_metrics(run_id, numeric | {f"seconds/{stage}": record.seconds}, step=k)
        tracker.log_metrics(tracker.parent_id, numeric, step=k)
    round_records = [r for r in ctx.run.records() if r.round == k]
    tracker.log_metrics(run_id, {"overlap_ratio": artifacts.overlap_ratio(round_records)}, step=k)
    folder = ctx.dir("artifacts")
    candidates = round_candidates(ctx)
    samples = read_table(ctx.dir(PREFERENCES) / "samples.parquet", "samples")
    reward = dict(zip(samples[col.CANDIDATE_ID].to_pylist(), samples[col.REWARD].to_pylist(), strict=True))
    files = [artifacts.timeline_chart(folder / "timeline.png", round_records)]
    if ctx.cfg.loop.video_grid_prompts:
        files.append(
            artifacts.video_grid(
                folder / "candidates.mp4",
                candidates,
                reward,
                ctx.dir(GENERATE),
                ctx.cfg.loop.video_grid_prompts,
                4,
            )
        )
        files.extend(_eval_grid(ctx, folder))
    oracle = read_oracle(ctx)
    if oracle is not None:
        labels = read_table(ctx.dir(LABEL) / "labels.parquet", "labels")
        files.append(
            artifacts.confusion_chart(
                folder / "critic_confusion.png", artifacts.confusion_matrices(labels, oracle)
            )
        )
    if ctx.cfg.generator.backend == "world":
        history = [
            (f"r{r.round}", {key.removeprefix("bench/"): v for key, v in r.metrics.items()})
            for r in ctx.run.records()
            if r.stage == EVALUATE
        ]
        headline = ("total", "quality", "semantic")
        files.append(artifacts.score_chart(folder / "benchmark.png", history, headline))
        dimensions = QUALITY_DIMENSIONS + SEMANTIC_DIMENSIONS
        files.append(artifacts.score_chart(folder / "dimensions.png", history, dimensions))
    for path in files:
        tracker.log_artifact(run_id, path, "round")
    experiment = ctx.cfg.loop.experiment
    tags = {"round": str(k), "run": ctx.run.path.name}
    tracker.register(
        run_id,
        f"{experiment}-generator",
        ctx.run.path / records[ALIGN].outputs["generator"],
        "generator",
        tags,
    )
    if "critic" in records[REFRESH].outputs:
        tracker.register(
            run_id, f"{experiment}-critic", ctx.run.path / records[REFRESH].outputs["critic"], "critic", tags
        )
    tracker.finish(run_id)
