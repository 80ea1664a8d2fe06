"""SRPO critic refresh (Dual-IPO): the critic fine-tuned on its own confident labels, checked, put live.

Per round: the round's voted labels whose certainty reaches ``critic.certainty_threshold`` become
pseudo-labels (the preference-certainty filter); the current critic is fine-tuned on them with Ray
Train (`ipo_ray.critic.train_ray.fit_with_ray`); both critics are scored on a held-out seed set
(built once per run, from a seed the critic never trained on); the new one is kept unless its
held-out accuracy drops by more than ``loop.srpo.keep_tolerance``, and is then registered in the
running critic app, which loads it beside the old one while requests keep being answered.

With ``loop.srpo.preference_loss`` the fine-tuning adds the SRPO loss (`ipo_ray.critic.srpo`): of each
confident question's sampled answers (the label stage's ``answers.parquet``), those reaching the voted
verdict are preferred over the others, against the critic before the refresh. Its pairs are written
to ``srpo_pairs.json``; ``critic/srpo/{loss,accuracy,margin,pairs}`` join the stage's metrics.

Trigger (``loop.srpo.trigger``): every round; only when held-out disagreement exceeds the threshold;
or never (the frozen-critic arm of the ablation).
"""

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray.train

from ipo_ray.critic.evaluate import accuracy, first_token_verdicts, oracle_verdicts
from ipo_ray.critic.judge_first import judge_first_verdicts, own_verdicts
from ipo_ray.critic.model import critic_judges_first, load_critic
from ipo_ray.critic.serve.versions import register_version
from ipo_ray.critic.sft import FrameCache, examples_from_labels
from ipo_ray.critic.srpo import srpo_pairs, write_pairs
from ipo_ray.critic.train_loop import TrainPlan
from ipo_ray.critic.train_ray import fit_with_ray
from ipo_ray.data import columns as col
from ipo_ray.data import read_table, write_table
from ipo_ray.data.atomic import write_bytes_atomic
from ipo_ray.loop.stages import LABEL, REFRESH, RoundContext, StageResult
from ipo_ray.world.build import render_settings, seed_set

REFRESH_ATTEMPTS = 2  # Ray Train runs per refresh: the first, and one more after a ControllerError
log = logging.getLogger(__name__)

HELDOUT = "heldout"


def heldout_set(ctx: RoundContext) -> Path:
    """The run's held-out seed set (round 0), built on first use; its folder."""
    folder = ctx.run.stage_dir(0, HELDOUT)
    if not (folder / "labels.parquet").exists() or not (folder / "prompts.parquet").exists():
        srpo = ctx.cfg.loop.srpo
        seed_set(
            ctx.cfg,
            folder,
            num_clips=srpo.heldout_clips,
            num_pairs=srpo.heldout_pairs,
            seed=srpo.heldout_seed,
        )
    return folder


def evaluate_critic(ctx: RoundContext, critic_dir: Path, heldout: Path) -> dict[str, float]:
    """Held-out accuracy of a critic folder against the seed labels and the oracle (first-token
    verdicts; a judge-first critic's pairs after its own verdicts on both videos, as it is served)."""
    kinds = ("pointwise",) if ctx.cfg.loop.label_mode == "pointwise" else ("pointwise", "pairwise")
    labels = read_table(heldout / "labels.parquet", "labels")
    labels = labels.filter(pc.is_in(labels[col.KIND], value_set=pa.array(kinds)))
    examples = examples_from_labels(labels)
    read = judge_first_verdicts if critic_judges_first(critic_dir) else first_token_verdicts
    predicted = read(*load_critic(critic_dir), examples, FrameCache(ctx.cfg.video.num_frames))
    prompts = read_table(heldout / "prompts.parquet", "prompts")
    truth = oracle_verdicts(examples, prompts, render_settings(ctx.cfg.world.render))
    out = {f"labels/{k}": v for k, v in accuracy(examples, predicted, [e.verdict for e in examples]).items()}
    return out | {f"oracle/{k}": v for k, v in accuracy(examples, predicted, truth).items()}


def _headline(metrics: dict[str, float]) -> float:
    return metrics.get("oracle/pointwise/mean", metrics.get("labels/pointwise/mean", 0.0))


def refresh_stage(ctx: RoundContext) -> StageResult:
    """The SRPO refresh of round k (see the module docstring)."""
    srpo = ctx.cfg.loop.srpo
    if srpo.trigger == "never":
        return StageResult({"refreshed": 0, "critic_version": ctx.critic_version})
    heldout = heldout_set(ctx)
    before = evaluate_critic(ctx, ctx.critic_path, heldout)
    metrics: dict[str, Any] = {f"before/{k}": v for k, v in before.items()} | {
        "critic_version": ctx.critic_version
    }
    if srpo.trigger == "on_disagreement" and 1.0 - _headline(before) <= srpo.disagreement_threshold:
        return StageResult(metrics | {"refreshed": 0})

    out = ctx.dir(REFRESH)
    labels = read_table(ctx.dir(LABEL) / "labels.parquet", "labels")
    pseudo = labels.filter(pc.greater_equal(labels[col.CERTAINTY], ctx.cfg.critic.certainty_threshold))
    metrics |= {"pseudo_labels": pseudo.num_rows, "labels": labels.num_rows}
    if pseudo.num_rows < srpo.batch_size:
        return StageResult(metrics | {"refreshed": 0})
    write_table(pseudo, out / "pseudo_labels.parquet", "labels")
    judge_first = critic_judges_first(ctx.critic_path)
    pairs_path = _write_srpo_pairs(ctx, pseudo, out, judge_first) if srpo.preference_loss else None
    thinking_path = _write_pair_thinking(ctx, pseudo, out) if judge_first else None
    version = f"critic-r{ctx.round}"
    plan = TrainPlan(
        init_dir=str(ctx.critic_path),
        labels_path=str(out / "pseudo_labels.parquet"),
        out_dir=str(out / "critic"),
        version=version,
        num_frames=ctx.cfg.video.num_frames,
        with_reasons=ctx.cfg.critic.train.with_reasons,
        mirror_pairs=ctx.cfg.critic.train.mirror_pairs,
        lr=srpo.lr,
        batch_size=srpo.batch_size,
        steps=srpo.steps,
        warmup_steps=min(10, srpo.steps // 5),
        lora=srpo.lora,
        save_adapter=srpo.save_adapter,
        lora_rank=ctx.cfg.critic.train.lora_rank,
        lora_alpha=ctx.cfg.critic.train.lora_alpha,
        held_out=0.0,
        eval_every=srpo.steps,  # one checkpoint, at the end
        seed=ctx.cfg.seed + ctx.round,
        srpo_pairs_path=str(pairs_path) if pairs_path else None,
        pair_thinking_path=str(thinking_path) if thinking_path else None,
        srpo_beta=srpo.beta,
        srpo_weight=srpo.preference_weight,
        srpo_pairs_per_step=srpo.pairs_per_step,
        bf16=srpo.bf16,
    )
    # A killed worker restarts the (short) refresh from the current critic.
    storage = str((out / "ray").resolve())
    trained = _fit_with_retry(
        plan, srpo.workers, srpo.cpus_per_worker, srpo.gpus_per_worker, storage, version
    )
    metrics |= {k: v for k, v in trained.items() if k.startswith(("train/loss", "critic/srpo/"))}
    after = evaluate_critic(ctx, out / "critic", heldout)
    metrics |= {f"after/{k}": v for k, v in after.items()}
    if _headline(after) < _headline(before) - srpo.keep_tolerance:
        return StageResult(metrics | {"refreshed": 0, "rejected": 1})
    register_version(version, out / "critic", ctx.cfg.serve.app_name)
    return StageResult(
        metrics | {"refreshed": 1, "critic_version": version}, {"critic": ctx.run.relative(out / "critic")}
    )


def _write_pair_thinking(ctx: RoundContext, pseudo: pa.Table, out: Path) -> Path | None:
    """A judge-first critic's own verdicts on both videos of each pairwise pseudo-label, the
    thinking it trains those questions after (as `jobs/train_critic.py` does); None without pairs."""
    pairs = [e for e in examples_from_labels(pseudo) if e.kind == "pairwise"]
    if not pairs:
        return None
    thinking = own_verdicts(*load_critic(ctx.critic_path), pairs, FrameCache(ctx.cfg.video.num_frames))
    path = out / "pair_thinking.json"
    write_bytes_atomic(path, json.dumps(thinking).encode())
    return path


def _write_srpo_pairs(ctx: RoundContext, pseudo: pa.Table, out: Path, judge_first: bool = False) -> Path:
    """The SRPO pairs of the round's confident labels, from the label stage's sampled answers.

    A judge-first critic's pairwise answers were sampled after given verdict lines that the SRPO
    loss's question does not carry, so its pairs come from pointwise questions only.
    """
    answers_path = ctx.dir(LABEL) / "answers.parquet"
    if not answers_path.exists():
        raise FileNotFoundError(
            f"{answers_path}: no sampled answers for loop.srpo.preference_loss (the label stage of runs "
            "made before the SRPO loss existed did not keep them); start a new run, or set "
            "loop.srpo.preference_loss=false"
        )
    pairs = srpo_pairs(
        pseudo,
        read_table(answers_path, "critic_answers"),
        ctx.cfg.critic.certainty_threshold,
        ctx.cfg.loop.srpo.pairs_per_question,
        ctx.cfg.critic.chain_of_thought,
    )
    if judge_first:
        pairs = [p for p in pairs if p.example.kind == "pointwise"]
    return write_pairs(out / "srpo_pairs.json", pairs)


def _fit_with_retry(
    plan: TrainPlan, workers: int, cpus: float, gpus: float, storage: str, version: str
) -> dict[str, float]:
    """Runs the refresh on Ray Train, once more if the run fails as a whole.

    Ray Train restarts a worker group whose worker dies while training (``max_failures``), but a
    worker lost while the group is being set up fails the run with a ``ControllerError`` (seen when
    the fault test killed a refresh worker early). The refresh is short and starts from the current
    critic, so a second run from scratch is cheap; its checkpoint replaces the first one's.
    """
    for attempt in range(REFRESH_ATTEMPTS):
        name = version if attempt == 0 else f"{version}-retry{attempt}"
        try:
            return fit_with_ray(plan, workers, cpus, storage, name=name, max_failures=2, gpus_per_worker=gpus)
        except ray.train.ControllerError as error:
            if attempt == REFRESH_ATTEMPTS - 1:
                raise
            log.warning("critic refresh %s failed (%s); running it again", version, error)
    raise AssertionError("unreachable: the last attempt returns or raises")
