"""Critic SFT training: one plain-torch function, run in-process or by Ray Train workers.

`train_critic` is the whole loop (IPO Eq. 1, answer tokens only, plus the optional SRPO loss on the
critic's own sampled answers, `srpo.py`/`srpo_train.py`): it reads a labels table, splits
off held-out items, trains the critic folder it starts from (all weights, or LoRA adapters merged
on save), evaluates held-out first-token verdicts every ``eval_every`` steps, and writes a
versioned checkpoint folder (`checkpoint.py`, replaced at every evaluation) that `load_critic` and
`VllmBackend` both load. `train_ray.fit_with_ray` runs the same function on N Ray Train workers.
"""

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ipo_ray.critic.adapters import AdapterInfo, is_adapter, read_adapter
from ipo_ray.critic.augment import with_descriptions, with_mirrored_pairs
from ipo_ray.critic.checkpoint import save_checkpoint
from ipo_ray.critic.contrast import caption_contrast_pairs, own_rows, specs_by_caption
from ipo_ray.critic.held_out import HeldOutEvaluator, WorldCheck
from ipo_ray.critic.judge_first import with_own_verdicts
from ipo_ray.critic.model import load_critic
from ipo_ray.critic.probe import VerdictProbe
from ipo_ray.critic.sft import (
    FrameCache,
    SftExample,
    answer_loss,
    answer_weights,
    collate,
    describe_examples,
    encode,
    examples_from_labels,
    split_held_out,
)
from ipo_ray.critic.srpo import read_pairs
from ipo_ray.critic.srpo_train import SrpoStepStats, srpo_metrics, srpo_term
from ipo_ray.data import TableKind, read_table
from ipo_ray.world.render import RenderSettings

# Held-out contrast pairs checked at each evaluation (each gives a pointwise row, a preference and a tie).
CONTRAST_CHECK_PAIRS = 100
# LoRA goes on the language model's projections: the vision tower and merger stay as trained.
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass(frozen=True)
class TrainPlan:
    """Everything one training run needs, as plain values (what the job builds from the config).

    Attributes:
        init_dir: Critic folder to start from (`build_critic` output or an earlier checkpoint).
        labels_path: Labels table (`TableKind.LABELS`) with video paths readable by every worker.
        out_dir: Checkpoint folder to write (replaced atomically).
        version: Version name for the manifest.
        num_frames: Frames sampled per video (as the serving side samples them).
        with_reasons: Train "Verdict. reason" answers; False = verdict only.
        verdict_weight: Loss weight of the verdict token (1 = IPO Eq. 1's token mean; `sft.answer_weights`).
        describe_share: Share of each batch given to the describe task (`sft.describe_examples` over
            the training videos); 0 = labels only. Critics trained from scratch need it.
        mirror_pairs: Also train every pairwise row with its videos swapped (`augment.mirrored`).
        contrast_pairs: Add this many caption-contrast pairs (`contrast.caption_contrast_pairs`)
            from the training split; needs `prompts_path` (its specs).
        contrast_kind: Their question: ``"pointwise"`` (a clip under its neighbour's caption, Bad),
            ``"pairwise"`` (both clips under one caption, and a tie of the same make) or ``"both"``.
        contrast_only: Train on the contrasts and their clips' own semantic rows only (the job's
            contrast warm-up), instead of adding the contrasts to all training rows.
        descriptions_path: JSON {video path: the critic's own description} (`augment.self_descriptions`);
            set = describe-first: every question trains and evaluates with those as its
            chain-of-thought (`augment.with_descriptions`). None = direct answers.
        pair_thinking_path: JSON {label id: the init critic's own pointwise verdicts on both videos}
            (`judge_first.own_verdicts`); set = judge-first: every pairwise question trains and
            evaluates with them as its chain-of-thought. None = direct pairwise answers.
        lr, weight_decay: AdamW.
        batch_size: Global examples per step (split over workers).
        steps: Step cap.
        minutes: Wall-clock cap (rank 0's clock decides for all), or None.
        warmup_steps: Linear warm-up, then cosine decay to 10% over max(step/steps, time/minutes).
        lora, lora_rank, lora_alpha: LoRA on the language model instead of full fine-tuning.
        held_out: Share of items kept for evaluation.
        eval_every: Steps between evaluations (and checkpoint writes).
        eval_max: Held-out rows scored per in-training evaluation at most.
        seed: Split, data order and LoRA initialisation.
        threads: torch threads per worker.
        prompts_path: A world prompts table to judge held-out rows with the oracle; None = no oracle.
        render: `RenderSettings` fields of the world those clips come from (with `prompts_path`).
        srpo_pairs_path: SRPO pairs (`srpo.write_pairs`) whose loss is added to the SFT loss; None =
            SFT only. The reference is the critic at `init_dir`.
        srpo_beta: SRPO β (`srpo.srpo_loss`).
        srpo_weight: Weight of the SRPO loss (mean over the step's pairs) beside the SFT loss.
        srpo_pairs_per_step: Global pairs per step (fewer when fewer exist; a multiple of the workers).
        probe_weight: Weight of the video verdict probe's loss (`probe.VerdictProbe`, training only);
            0 = none.
        device: Torch device of the worker ("cpu", or the GPU Ray Train assigned, "cuda:0").
        bf16: bf16 autocast of the forward passes (on GPUs; weights and optimiser state stay fp32).
    """

    init_dir: str
    labels_path: str
    out_dir: str
    version: str = "v1"
    num_frames: int = 16
    with_reasons: bool = True
    verdict_weight: float = 1.0
    describe_share: float = 0.0
    mirror_pairs: bool = False
    contrast_pairs: int = 0
    contrast_kind: str = "pointwise"
    contrast_only: bool = False
    descriptions_path: str | None = None
    pair_thinking_path: str | None = None
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    steps: int = 2000
    minutes: float | None = None
    warmup_steps: int = 50
    lora: bool = False
    lora_rank: int = 8
    lora_alpha: int = 16
    save_adapter: bool = False
    held_out: float = 0.1
    eval_every: int = 500
    eval_max: int = 600
    seed: int = 0
    threads: int = 1
    prompts_path: str | None = None
    render: dict[str, Any] = field(default_factory=dict)
    srpo_pairs_path: str | None = None
    srpo_beta: float = 0.1
    srpo_weight: float = 1.0
    srpo_pairs_per_step: int = 16
    probe_weight: float = 0.0
    device: str = "cpu"
    bf16: bool = False


def lr_factor(step: int, progress: float, warmup_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine from 1 to 0.1 over progress ∈ [0, 1]."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train_critic(
    plan: TrainPlan,
    rank: int = 0,
    world_size: int = 1,
    report: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Trains a critic on a labels table and writes its checkpoint (see the module docstring).

    Args:
        plan: The run.
        rank, world_size: This worker's place; with world_size > 1 a torch.distributed process
            group (gloo) must be initialised.
        report: Called on every rank with the metrics of each evaluation (rank 0's values).

    Returns:
        The last evaluation's metrics (``critic/labels/...``, ``critic/oracle/...``, ``train/...``).
    """
    torch.set_num_threads(plan.threads)
    torch.manual_seed(plan.seed)
    if not (Path(plan.init_dir, "config.json").is_file() or is_adapter(plan.init_dir)):
        raise FileNotFoundError(
            f"{plan.init_dir}: not a critic folder (no config.json or adapter_config.json); build or "
            "train one first"
        )
    examples = examples_from_labels(read_table(plan.labels_path, TableKind.LABELS))
    if plan.descriptions_path is not None:
        examples = with_descriptions(examples, json.loads(Path(plan.descriptions_path).read_text()))
    if plan.pair_thinking_path is not None:
        examples = with_own_verdicts(examples, json.loads(Path(plan.pair_thinking_path).read_text()))
    train, held = split_held_out(examples, plan.held_out, plan.seed)
    if plan.mirror_pairs:  # after the split: a held-out pair is never trained on in either order
        train = with_mirrored_pairs(train)
    held_contrasts: list[SftExample] = []  # evaluation only: is the comparison learned, not memorised?
    if plan.contrast_pairs:  # from training clips only, like the mirrors
        if plan.prompts_path is None:
            raise ValueError("contrast_pairs needs prompts_path: a prompts table with the captions' specs")
        specs = specs_by_caption(read_table(plan.prompts_path, TableKind.PROMPTS).to_pylist())
        held_contrasts = caption_contrast_pairs(held, specs, CONTRAST_CHECK_PAIRS, plan.seed, "both")
        contrasts = caption_contrast_pairs(train, specs, plan.contrast_pairs, plan.seed, plan.contrast_kind)
        if plan.contrast_only and not contrasts:
            raise ValueError(
                f"no caption-contrast pairs in the {len(train)} training rows: no two clips judged "
                "semantically Good have prompts that differ in one colour, shape or action"
            )
        # Contrast-only (the job's contrast warm-up): the clips' own rows first, so that a describe
        # row, if any, takes a video's own caption, never the one it was contrasted with.
        train = own_rows(train, contrasts) + contrasts if plan.contrast_only else train + contrasts
    num_describe = round(plan.batch_size * plan.describe_share)
    num_labels = plan.batch_size - num_describe
    if not 0 <= plan.describe_share < 1 or num_labels < 1:
        raise ValueError(f"describe_share {plan.describe_share} leaves no label rows in a batch")
    if len(train) < num_labels:
        raise ValueError(f"{len(train)} training rows for {num_labels} label rows a batch: too few labels")
    # Describe examples are indexed after the label rows: index i ≥ len(train) is pool[i].
    pool = train + (describe_examples(train) if num_describe else [])
    describe_order = _batch_order(len(pool) - len(train), num_describe, plan.seed, 1, "describe rows")
    # LoRA from an adapter version continues that adapter on its base, so the result is again an
    # adapter of the base the app serves; other inits (an adapter included, merged) start plain.
    adapter = read_adapter(plan.init_dir) if plan.lora and is_adapter(plan.init_dir) else None
    model, processor = load_critic(adapter.base if adapter else plan.init_dir)
    device = torch.device(plan.device)
    model.to(device)
    core = model  # the Qwen2-VL whose modules LoRA (if any) wraps in place
    if plan.lora:
        # Before the SRPO reference is scored: a new adapter starts as the identity and a continued
        # one as the version it was, so either way the reference is the critic before this run.
        model = _with_lora(model, plan, adapter)
    frames = FrameCache(plan.num_frames)
    pad, merge = processor.tokenizer.pad_token_id, core.config.vision_config.spatial_merge_size
    srpo = None
    if plan.srpo_pairs_path is not None:
        if plan.srpo_weight < 0 or plan.srpo_pairs_per_step < 1:
            raise ValueError(
                f"srpo_weight must be >= 0 and srpo_pairs_per_step >= 1, got {plan.srpo_weight}, "
                f"{plan.srpo_pairs_per_step}"
            )
        train_ids = {e.label_id for e in train}  # pairs of held-out questions are dropped, like their labels
        pairs = [p for p in read_pairs(plan.srpo_pairs_path) if p.example.label_id in train_ids]
        srpo = srpo_term(pairs, plan.srpo_beta, core, processor, frames, rank, world_size)
    srpo_per_step = min(plan.srpo_pairs_per_step, len(srpo.pairs)) // world_size * world_size if srpo else 0
    srpo_order = _batch_order(len(srpo.pairs) if srpo else 0, srpo_per_step, plan.seed, 2, "SRPO pairs")
    srpo_stats: list[SrpoStepStats] = []
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    probe = VerdictProbe(core).to(device) if plan.probe_weight > 0 else None
    if probe is not None:
        params += list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=plan.lr, weight_decay=plan.weight_decay)
    cache: dict[int, Any] = {}

    def batch_of(indices: np.ndarray) -> dict[str, torch.Tensor]:
        for i in indices:
            if i not in cache:
                e = pool[i]
                cache[i] = encode(processor, e, [frames(p) for p in e.video_paths], True, plan.with_reasons)
        return collate([cache[i] for i in indices], pad, merge, device)

    evaluator = (
        HeldOutEvaluator(
            held, frames, plan.seed, plan.with_reasons, plan.eval_max, _world(plan), held_contrasts
        )
        if rank == 0
        else None
    )
    per_worker = plan.batch_size // world_size
    start, step, epoch = time.perf_counter(), 0, 0
    losses: list[float] = []
    probe_losses: list[float] = []
    history: list[dict[str, float]] = []  # rank 0's evaluations, kept in the manifest
    last: list[dict[str, float]] = []  # every rank's latest metrics

    def evaluate() -> dict[str, float]:
        metrics = {
            "train/step": float(step),
            "train/minutes": (time.perf_counter() - start) / 60,
            "train/loss": float(np.mean(losses[-plan.eval_every :])) if losses else float("nan"),
        }
        if probe_losses:
            metrics["train/probe_loss"] = float(np.mean(probe_losses[-plan.eval_every :]))
        if srpo is not None:
            metrics |= srpo_metrics(srpo_stats[-plan.eval_every :], len(srpo.pairs))
        if evaluator is not None:
            core.eval()
            metrics |= evaluator(core, processor)
            core.train()
            history.append(metrics)
            save_checkpoint(model, processor, plan, history, len(train), len(held))
        if report is not None:
            report(metrics)
        last[:] = [metrics]
        return metrics

    while True:
        order = np.random.default_rng([plan.seed, epoch]).permutation(len(train))
        for first in range(0, len(order) - num_labels + 1, num_labels):
            elapsed = time.perf_counter() - start
            progress = max(step / plan.steps, elapsed / (60 * plan.minutes) if plan.minutes else 0.0)
            chosen = np.concatenate([order[first : first + num_labels], len(train) + next(describe_order)])
            mine = chosen[rank * per_worker : (rank + 1) * per_worker]
            batch = batch_of(mine)
            count = float(answer_weights(batch["labels"], plan.verdict_weight).sum())
            # One all-reduce carries the global token count, rank 0's stop decision and its progress.
            # On the worker's device: NCCL all-reduces device tensors only.
            sync = torch.tensor([count, float(progress >= 1.0), progress], dtype=torch.float64, device=device)
            if world_size > 1:
                sync[1:] *= rank == 0
                dist.all_reduce(sync)
            if sync[1] > 0:
                # Stopping right after an evaluation: its metrics and checkpoint are the final ones.
                return last[0] if last and last[0]["train/step"] == step else evaluate()
            for group in opt.param_groups:
                group["lr"] = plan.lr * lr_factor(step, float(sync[2]), plan.warmup_steps)
            # bf16 autocast covers every forward of the step (answers, probe, SRPO); backward follows it.
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=plan.bf16):
                loss_sum, _ = answer_loss(core, batch, plan.verdict_weight)
                loss = loss_sum / sync[0].item()
                if probe is not None:
                    # A mean over this worker's rows; workers' gradients are summed, hence the division.
                    probe_loss = probe.loss([pool[i] for i in mine])
                    loss = loss + plan.probe_weight * probe_loss / world_size
                    probe_losses.append(probe_loss.item())
                if srpo is not None and srpo_per_step:
                    # The step's global pair batch, the same on every rank; this rank takes its slice.
                    step_pairs = next(srpo_order)
                    share = srpo_per_step // world_size
                    term, stats = srpo.step(
                        core, step_pairs[rank * share : (rank + 1) * share], srpo_per_step
                    )
                    loss = loss + plan.srpo_weight * term
                    srpo_stats.append(stats)
            loss.backward()
            if world_size > 1:
                _all_reduce_grads(params)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss_sum.item() / max(count, 1))
            step += 1
            if step % plan.eval_every == 0:
                evaluate()
        epoch += 1


def _batch_order(pool_size: int, per_step: int, seed: int, stream: int, what: str) -> Iterator[np.ndarray]:
    """Endless batches of `per_step` indices in [0, pool_size), reshuffled every pass.

    Every worker draws the same sequence (same seed), so the global batch is the same on all ranks.
    `stream` keeps the describe rows (1) and SRPO pairs (2) on independent shuffles; `what` names
    the items in the error.
    """
    if per_step == 0:
        while True:
            yield np.zeros(0, dtype=np.int64)
    if pool_size < per_step:
        raise ValueError(f"{pool_size} {what} for {per_step} {what} a batch")
    passes = 0
    while True:
        order = np.random.default_rng([seed, stream, passes]).permutation(pool_size)
        for first in range(0, pool_size - per_step + 1, per_step):
            yield order[first : first + per_step]
        passes += 1


def _all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Sums gradients over workers in one flat buffer (each worker divided by the global count)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def _world(plan: TrainPlan) -> WorldCheck | None:
    """What the evaluator needs to judge against the oracle, for world labels (a prompts table)."""
    if plan.prompts_path is None:
        return None
    return WorldCheck(plan.prompts_path, RenderSettings(**plan.render))


def _with_lora(model: torch.nn.Module, plan: TrainPlan, adapter: AdapterInfo | None) -> torch.nn.Module:
    """`model` with trainable LoRA adapters: `adapter`'s (its own rank) or new ones of `plan`'s rank."""
    from peft import LoraConfig, PeftModel, get_peft_model  # full fine-tuning never needs peft

    if adapter is not None:
        return PeftModel.from_pretrained(model, adapter.path, is_trainable=True)
    config = LoraConfig(
        r=plan.lora_rank, lora_alpha=plan.lora_alpha, lora_dropout=0.0, target_modules=LORA_TARGETS
    )
    return get_peft_model(model, config)
