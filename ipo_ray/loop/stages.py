"""The stages of a round, each a function of a `RoundContext` that writes into its own folder.

A stage returns `StageResult` (metrics and named outputs); `driver.run_stage` commits it. Stages
read what earlier stages committed through the run directory, never through memory, so any stage
can be the first one a resumed job runs.

Order in round k (Dual-IPO): prompts → generate → label → preferences → (align ‖ refresh) →
evaluate. The base generator is evaluated once, as round 0's ``evaluate``.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from ipo_ray.align.run import align_generator
from ipo_ray.config import Config
from ipo_ray.data import columns as col
from ipo_ray.data import read_table, write_table
from ipo_ray.data.atomic import write_bytes_atomic
from ipo_ray.data.tables import read_parts
from ipo_ray.generator.stage import generate_candidates
from ipo_ray.generator.world_model import DEFAULT_CHECKPOINT
from ipo_ray.loop.eval_clips import CLIPS_DIR, list_generated_clips
from ipo_ray.loop.evaluation import (
    benchmark_generator,
    critic_agreement,
    oracle_judgements,
    oracle_scores,
    pair_accuracy,
)
from ipo_ray.loop.labelling import ScoreFn, label_pairwise, label_pointwise, oracle_response
from ipo_ray.loop.preferences import best_worst_pairs, borda_rewards, candidate_reward, samples_table
from ipo_ray.loop.production_eval import critic_metrics, evaluation_prompts, flicker_scores
from ipo_ray.loop.prompts import source_prompts
from ipo_ray.loop.run_dir import RunDir
from ipo_ray.loop.vbench_full import run_full_vbench
from ipo_ray.world.build import render_settings

BASE_CRITIC = "default"  # the critic app's name for critic.path; it also scores every evaluation
ORACLE_JUDGE = "oracle"  # the label stage's critic version when loop.judge is oracle
# Round 0's set-up stage that encodes the real videos of the λ2 term (`loop.real_videos`).
REAL = "real"
PROMPTS, GENERATE, LABEL, PREFERENCES, ALIGN, REFRESH, EVALUATE = (
    "prompts",
    "generate",
    "label",
    "preferences",
    "align",
    "refresh",
    "evaluate",
)
ROUND_STAGES = (PROMPTS, GENERATE, LABEL, PREFERENCES, ALIGN, REFRESH, EVALUATE)
# Stages redone from an empty folder when an attempt was interrupted. Generation keeps its committed
# parts (it skips finished prompts) and alignment its export (a finished one is returned as is).
START_CLEAN = frozenset({PROMPTS, LABEL, PREFERENCES, REFRESH, EVALUATE})


@dataclass(frozen=True)
class RoundContext:
    """What a stage of round k needs to know.

    Attributes:
        cfg: The job's config.
        run: The run directory.
        round: k (0 for the base evaluation).
        generator_path: Generator v(k): the model that samples this round's candidates.
        reference_path: The alignment reference: v(k) (iterative, IPO Eq. 10) or the base.
        critic_version: Name of the critic version that labels this round.
        critic_path: Folder of that critic version.
        critic: The critic app's client (``score`` / ``compare`` over HTTP).
        base_path: The base generator (round 0), the reference under ``align.reference_mode: base``.
        tracking_uri: MLflow tracking URI (None: no tracking).
        mlflow_run_id: The round's MLflow run, parent of the stages' own runs.
    """

    cfg: Config
    run: RunDir
    round: int
    generator_path: Path
    reference_path: Path
    critic_version: str
    critic_path: Path
    critic: Any
    base_path: Path | None = None
    tracking_uri: str | None = None
    mlflow_run_id: str | None = None

    def dir(self, stage: str) -> Path:
        return self.run.stage_dir(self.round, stage)


@dataclass(frozen=True)
class StageResult:
    """A stage's metrics and outputs (name → path inside the run)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


def base_generator_path(cfg: Config) -> Path:
    """The generator before round 1: the configured folder, or the shipped small world model."""
    return Path(cfg.generator.model_path) if cfg.generator.model_path else DEFAULT_CHECKPOINT


def prompts_stage(ctx: RoundContext) -> StageResult:
    """Fresh prompts for the round (`ipo_ray.loop.prompts`)."""
    table, metrics = source_prompts(ctx.cfg.loop, ctx.cfg.loop.prompts_per_round, ctx.cfg.seed, ctx.round)
    path = ctx.dir(PROMPTS) / "prompts.parquet"
    write_table(table, path, "prompts")
    return StageResult({"prompts": table.num_rows} | metrics, {"prompts": ctx.run.relative(path)})


def round_prompts(ctx: RoundContext) -> pa.Table:
    return read_table(ctx.dir(PROMPTS) / "prompts.parquet", "prompts")


def generator_kwargs(cfg: Config, model_path: Path, version: str) -> dict[str, Any]:
    """The generator backend's constructor arguments for a model folder (`generator.stage.BACKENDS`)."""
    gen = cfg.generator
    kwargs: dict[str, Any] = {
        "model_path": str(model_path),
        "version": version,
        "num_inference_steps": gen.num_inference_steps,
        "guidance_scale": gen.guidance_scale,
        "device": gen.device,
    }
    if gen.backend != "world":  # the world model's geometry is fixed by its checkpoint
        kwargs |= {
            "height": gen.height,
            "width": gen.width,
            "num_frames": gen.num_frames,
            "fps": gen.fps,
            "dtype": getattr(torch, gen.dtype),
        }
    return kwargs


def generate_stage(ctx: RoundContext) -> StageResult:
    """K candidates per prompt from v(k) through the Ray Data actor pool; resumes committed parts."""
    gen = ctx.cfg.generator
    table = generate_candidates(
        round_prompts(ctx),
        ctx.dir(GENERATE),
        backend=gen.backend,
        generator_kwargs=generator_kwargs(ctx.cfg, ctx.generator_path, f"{gen.backend}-v{ctx.round}"),
        num_candidates=gen.num_candidates,
        round_index=ctx.round,
        seed=ctx.cfg.seed,
        num_actors=gen.num_actors,
        cpus_per_actor=gen.cpus_per_actor,
        gpus_per_actor=gen.gpus_per_actor,
        prompts_per_batch=gen.prompts_per_batch,
    )
    return StageResult({"candidates": table.num_rows}, {"candidates": ctx.run.relative(ctx.dir(GENERATE))})


def round_candidates(ctx: RoundContext) -> pa.Table:
    """The round's candidates with their prompt text as a ``prompt`` column."""
    return with_prompt_text(read_parts(ctx.dir(GENERATE), "candidates"), round_prompts(ctx))


def with_prompt_text(candidates: pa.Table, prompts: pa.Table) -> pa.Table:
    """`candidates` with each row's prompt text (looked up in `prompts`) as a ``prompt`` column."""
    text = dict(zip(prompts[col.PROMPT_ID].to_pylist(), prompts[col.TEXT].to_pylist(), strict=True))
    return candidates.append_column(
        col.PROMPT, pa.array([text[p] for p in candidates[col.PROMPT_ID].to_pylist()])
    )


def evaluate_generator_stage(ctx: RoundContext, model_path: Path) -> StageResult:
    """Generator evaluation, the same prompts and seeds every round: the world benchmark (oracle) for
    the world backend, `evaluate_production_stage` for cogvideox/wan."""
    gen, bench = ctx.cfg.generator, ctx.cfg.world.benchmark
    if gen.backend != "world":
        return evaluate_production_stage(ctx, model_path)
    scores = benchmark_generator(
        model_path,
        gen.guidance_scale,
        gen.num_inference_steps,
        bench.num_prompts,
        keep_dir=ctx.dir(EVALUATE),
        num_kept=ctx.cfg.loop.video_grid_prompts,
    )
    return StageResult({f"bench/{k}": v for k, v in scores.items()})


def evaluate_production_stage(ctx: RoundContext, model_path: Path) -> StageResult:
    """One clip per evaluation prompt from `model_path`, scored for flicker, by the base critic, and by
    the full VBench when configured (`ipo_ray.loop.production_eval`). The clips stay under ``clips/``;
    the first ``loop.video_grid_prompts`` are listed for the evaluation grid (`eval_clips`).

    The evaluation prompts are chosen in round 0 and read back from there in every later round; each
    clip's seed depends only on (run seed, prompt id), so rounds differ only by their weights.
    """
    cfg, out = ctx.cfg, ctx.dir(EVALUATE)
    prompts_path = ctx.run.stage_dir(0, EVALUATE) / "eval_prompts.parquet"
    if ctx.round == 0:
        write_table(evaluation_prompts(cfg), prompts_path, "prompts")
    prompts = read_table(prompts_path, "prompts")
    clips_dir = out / CLIPS_DIR
    clips = generate_candidates(
        prompts,
        clips_dir,
        backend=cfg.generator.backend,
        generator_kwargs=generator_kwargs(cfg, model_path, f"{cfg.generator.backend}-eval-r{ctx.round}"),
        num_candidates=1,
        round_index=0,  # fixed, so every round samples each prompt with the same seed
        seed=cfg.seed,
        num_actors=cfg.generator.num_actors,
        cpus_per_actor=cfg.generator.cpus_per_actor,
        gpus_per_actor=cfg.generator.gpus_per_actor,
        prompts_per_batch=cfg.generator.prompts_per_batch,
    )
    clips = with_prompt_text(clips, prompts)
    list_generated_clips(out, clips, prompts, cfg.loop.video_grid_prompts)
    flicker = flicker_scores(clips, clips_dir)
    labelled = label_pointwise(critic_score_fn(ctx.critic, BASE_CRITIC), clips, clips_dir, BASE_CRITIC)
    write_table(labelled.labels, out / "labels.parquet", "labels")
    metrics: dict[str, Any] = {"eval/temporal_flickering": float(np.mean(list(flicker.values())))}
    metrics |= critic_metrics(labelled)
    if cfg.loop.evaluation.vbench:
        videos = {str((clips_dir / r[col.VIDEO_PATH]).resolve()): r[col.PROMPT] for r in clips.to_pylist()}
        settings = cfg.loop.evaluation
        weights = str(settings.vbench_weights)
        metrics |= run_full_vbench(
            videos, settings.vbench_dimensions, weights, out / "vbench", cfg.generator.device
        )
    write_bytes_atomic(out / "flicker.json", json.dumps(flicker).encode())
    return StageResult(metrics, {"clips": ctx.run.relative(clips_dir)})


def critic_score_fn(critic: Any, version: str) -> ScoreFn:  # noqa: ANN401 - the critic client
    """The labelling code's ``(video path, prompt) → /v1/score`` call for one critic version."""
    return lambda path, prompt: critic.score(prompt=prompt, video=path, version=version)


def label_stage(ctx: RoundContext) -> StageResult:
    """Critic judgements of every candidate over HTTP (or the oracle's, `loop.judge`); labels table,
    all vote counts, oracle agreement."""
    candidates = round_candidates(ctx)
    out = ctx.dir(LABEL)
    version = ctx.critic_version
    judgements = None
    if ctx.cfg.generator.backend == "world":
        judgements = oracle_judgements(
            candidates, round_prompts(ctx), ctx.dir(GENERATE), render_settings(ctx.cfg.world.render)
        )
    if ctx.cfg.loop.judge == "oracle":
        assert judgements is not None  # the config allows the oracle judge on the world backend only
        by_path = {
            str((ctx.dir(GENERATE) / path).resolve()): judgements[cid]
            for cid, path in zip(
                candidates[col.CANDIDATE_ID].to_pylist(), candidates[col.VIDEO_PATH].to_pylist(), strict=True
            )
        }
        version = ORACLE_JUDGE
        labelled = label_pointwise(
            lambda path, _prompt: oracle_response(by_path[path]), candidates, ctx.dir(GENERATE), version
        )
    elif ctx.cfg.loop.label_mode == "pointwise":
        labelled = label_pointwise(
            critic_score_fn(ctx.critic, version),
            candidates,
            ctx.dir(GENERATE),
            version,
        )
    else:
        labelled = label_pairwise(
            lambda a, b, prompt: ctx.critic.compare(
                prompt=prompt, video_a_path=a, video_b_path=b, version=version
            ),
            candidates,
            ctx.dir(GENERATE),
            version,
        )
    write_table(labelled.labels, out / "labels.parquet", "labels")
    write_table(labelled.answers, out / "answers.parquet", "critic_answers")
    votes = {"point": labelled.point_votes, "pair": [list(v) for v in labelled.pair_votes]}
    write_bytes_atomic(out / "votes.json", json.dumps(votes).encode())
    metrics = labelled.metrics() | {"critic_version": version}
    if judgements is not None:
        oracle = oracle_scores(judgements)
        write_bytes_atomic(out / "oracle.json", json.dumps(oracle).encode())
        metrics |= critic_agreement(labelled.labels, oracle)
    return StageResult(metrics, {"labels": ctx.run.relative(out / "labels.parquet")})


def read_oracle(ctx: RoundContext) -> dict[str, dict[str, tuple[str, float]]] | None:
    path = ctx.dir(LABEL) / "oracle.json"
    return json.loads(path.read_text()) if path.exists() else None


def preferences_stage(ctx: RoundContext) -> StageResult:
    """Rewards from the votes → best-vs-worst pairs (DPO) and the per-candidate samples table."""
    candidates = round_candidates(ctx)
    votes = json.loads((ctx.dir(LABEL) / "votes.json").read_text())
    if ctx.cfg.loop.label_mode == "pointwise":
        rewards = {cid: candidate_reward(v) for cid, v in votes["point"].items()}
        # LiFT Eq. 4's filter: the majority verdict is Good on every dimension.
        passes = {cid: all(_majority(v[d]) == "Good" for d in v) for cid, v in votes["point"].items()}
    else:
        rewards = borda_rewards([tuple(v) for v in votes["pair"]])
        passes = {}
    prefix = f"../{GENERATE}/"
    out = ctx.dir(PREFERENCES)
    pairs, stats = best_worst_pairs(candidates, rewards, ctx.round, path_prefix=prefix)
    samples = samples_table(candidates, rewards, passes, ctx.cfg.loop.kto_desirable_reward, prefix, ctx.round)
    write_table(pairs, out / "pairs.parquet", "pairs")
    write_table(samples, out / "samples.parquet", "samples")
    metrics: dict[str, Any] = {
        "pairs": stats.pairs,
        "tied_prompts": stats.ties,
        "mean_margin": stats.mean_margin,
        "desirable": int(sum(samples[col.DESIRABLE].to_pylist())),
        "passes": int(sum(samples[col.PASSES].to_pylist())),
        "mean_reward": float(sum(rewards.values()) / len(rewards)) if rewards else float("nan"),
    }
    oracle = read_oracle(ctx)
    if oracle is not None:
        metrics["pair_accuracy"] = pair_accuracy(pairs, oracle)
    return StageResult(
        metrics,
        {
            "pairs": ctx.run.relative(out / "pairs.parquet"),
            "samples": ctx.run.relative(out / "samples.parquet"),
        },
    )


def _majority(votes: dict[str, int]) -> str | None:
    """The answer with strictly the most votes, or None (no vote, or a shared top count)."""
    top = max(votes.values())
    leaders = [answer for answer, count in votes.items() if count == top]
    return leaders[0] if top > 0 and len(leaders) == 1 else None


def real_table_path(run: RunDir) -> Path:
    """The run's encoded real-videos table, committed by round 0's ``real`` stage."""
    return run.stage_dir(0, REAL) / "real_videos.parquet"


def align_stage(ctx: RoundContext) -> StageResult:
    """Generator v(k+1): Ray Train on the round's pairs (DPO) or samples (KTO, RWL, RS), exported."""
    cfg = ctx.cfg
    kind = "pairs" if cfg.align.objective == "dpo" else "samples"
    out = ctx.dir(ALIGN)
    manifest = align_generator(
        cfg.align,
        backend=cfg.generator.backend,
        generator_dir=ctx.generator_path,
        table_path=ctx.dir(PREFERENCES) / f"{kind}.parquet",
        out_dir=out / "generator",
        version=f"{cfg.generator.backend}-v{ctx.round + 1}",
        parent_version=f"{cfg.generator.backend}-v{ctx.round}",
        base_generator_dir=ctx.base_path,
        data_root=ctx.dir(PREFERENCES),
        text_embeds_dir=ctx.dir(GENERATE) / "prompt_embeds",
        storage_path=out / "ray",
        tracking_uri=ctx.tracking_uri,
        mlflow_parent_run_id=ctx.mlflow_run_id,
        # Encoded once per run, in round 0 (`loop.real_videos`): VAE and text encoder never change.
        real_table_path=real_table_path(ctx.run) if cfg.align.uses_real else None,
    )
    metrics = {f"align/{k}": v for k, v in manifest["metrics"].items()}
    metrics |= {"final_loss": manifest["metrics"].get("train/loss", float("nan")), "steps": manifest["steps"]}
    return StageResult(metrics, {"generator": ctx.run.relative(out / "generator")})
