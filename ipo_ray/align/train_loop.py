"""Alignment on Ray Train: a thin TorchTrainer shell around :class:`~ipo_ray.align.step.AlignmentStep`.

Each worker builds the policy (identical seed on every rank), its reference and the step; reads its
Ray Data shard of the training table — a ``pairs`` table for DPO (embeddings at
``{text_embeds_dir}/{prompt_id}.safetensors``), a ``samples`` table for KTO / reward-weighted
learning / rejection sampling (each row names its embedding file) — with latents and embeddings read
as the generator stage wrote them; accumulates gradients over micro-batches (DDP ``no_sync`` until the
last); and reports metrics with a checkpoint every ``checkpoint_every`` optimizer steps. Per-step
metrics, averaged over workers, go to MLflow from rank 0 when a tracking target is given.

KTO's reference point Q is the mean implicit reward over the whole global batch of a step: a
gradient-free pass over the step's micro-batches computes the rewards, all-reduced across workers,
before the pass with gradients (one extra policy forward per sample; the reference errors are reused).
KTO's λ1 NLL term is likewise the mean over the global batch's desirable samples, counted the same way,
so micro-batches holding different numbers of them are weighted by sample, not by micro-batch.

Reproducibility and resume: each pair's or sample's noise and timestep come from a generator seeded by
(seed, epoch, row id), so they are a function of the data, not of history, worker count or
micro-batching (1 worker × 2 micro-batches equals 2 workers × 1); the real videos of the λ2 term are
drawn per (seed, step, slot in the global batch) (``ipo_ray.align.real``), which keeps that so; a
checkpoint holds the model and optimizer state, the torch RNG state and the position (step, epoch,
micro-batch), and a resumed run skips the micro-batches of the epoch it had already consumed. With
``FailureConfig(max_failures=n)`` a killed worker group restarts from the last checkpoint.
"""

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray.data
import ray.train
import ray.train.torch
import torch
from torch import nn

from ipo_ray.align import losses as L
from ipo_ray.align.batches import PairBatch, SampleBatch
from ipo_ray.align.models import REFERENCES, Denoiser, FrozenCopyReference, enable_gradient_checkpointing
from ipo_ray.align.real import RealClips, real_draw
from ipo_ray.align.reporting import STATE_FILE, MlflowTarget, global_mean, mlflow_logger, report_step
from ipo_ray.align.step import AlignmentStep, StepConfig
from ipo_ray.align.table_rows import load_pairs, load_samples, row_seed, to_device
from ipo_ray.align.zero import ZERO_STAGES, load_zero_state, zero_engine


@dataclass(frozen=True)
class TrainLoopConfig:
    """Settings of the Ray Train loop.

    Args:
        step: the loss settings; its objective picks the table: ``dpo`` reads pairs, the others samples.
        text_embeds_dir: pairs only: folder of cached prompt embeddings, one ``{prompt_id}.safetensors``
            (S, D) each (the generator stage's ``prompt_embeds/``); samples rows name their own file.
        max_steps: optimizer steps to run.
        reference: ``frozen_copy`` or ``lora`` (the policy must then carry LoRA adapters).
        lr: AdamW learning rate (IPO: 2e-5).
        micro_batch: pairs (or samples) per worker per micro-batch.
        grad_accum: micro-batches per optimizer step; global batch = micro_batch·grad_accum·workers.
        checkpoint_every: optimizer steps between checkpoints (the last step is always checkpointed).
        max_grad_norm: gradient clipping norm.
        seed: seeds the initial weights and every noise draw.
        resume_from: a checkpoint directory to start from (a restart after a failure uses Ray's own).
        mixed_precision: ``no`` or ``bf16`` (autocast of the forwards; GPU workers only).
        zero_stage: 0 = DDP; 1, 2 or 3 = DeepSpeed ZeRO (``ipo_ray.align.zero``) instead of DDP.
        real_batch_size: real videos drawn beside each micro-batch for the λ2 NLL term (IPO Eq. 9);
            0 = none. Needs real clips given to :func:`fit` when > 0 and λ2 > 0.
        gradient_checkpointing: recompute the policy's blocks in the backward pass
            (:func:`~ipo_ray.align.models.enable_gradient_checkpointing`); same gradients, less memory.
    """

    step: StepConfig
    text_embeds_dir: str = ""
    max_steps: int = 100
    reference: str = "frozen_copy"
    lr: float = 2e-5
    micro_batch: int = 2
    grad_accum: int = 1
    checkpoint_every: int = 50
    max_grad_norm: float = 1.0
    seed: int = 0
    resume_from: str | None = None
    mixed_precision: str = "no"
    zero_stage: int = 0
    real_batch_size: int = 0
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.step.objective == "dpo" and not self.text_embeds_dir:
            raise ValueError("objective 'dpo' reads a pairs table: text_embeds_dir must name its embeddings")
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {sorted(REFERENCES)}, got {self.reference!r}")
        for name in ("max_steps", "micro_batch", "grad_accum", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.zero_stage not in (0, *ZERO_STAGES):
            raise ValueError(f"zero_stage must be 0 or one of {ZERO_STAGES}, got {self.zero_stage}")
        if self.real_batch_size < 0:
            raise ValueError(f"real_batch_size must be >= 0 (0 = no real videos), got {self.real_batch_size}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")

    @property
    def uses_real(self) -> bool:
        """Whether micro-batches carry real videos: a real batch size and a λ2 that is not 0."""
        return self.real_batch_size > 0 and self.step.lambda_real > 0

    @property
    def table_kind(self) -> str:
        """The table kind the objective trains on."""
        return "pairs" if self.step.objective == "dpo" else "samples"


def with_real(
    batch: PairBatch | SampleBatch, real: RealClips, loop: TrainLoopConfig, step: int, slot: int
) -> tuple[PairBatch | SampleBatch, list[int]]:
    """``batch`` with the real videos of its slot in the global batch added; their noise seeds."""
    indices, seeds = real_draw(loop.seed, step, slot, len(real), loop.real_batch_size)
    latents, embeds = real.load(indices)
    return replace(batch, real=latents, real_text_embeds=embeds), seeds


def train_func(config: dict[str, Any]) -> None:
    """The per-worker loop; ``config`` holds ``loop``, ``build_policy``, ``build_denoiser`` and
    optionally ``build_reference`` (the model the reference copies, else the policy), ``mlflow`` and
    ``real`` (:class:`~ipo_ray.align.real.RealClips` for the λ2 term)."""
    loop: TrainLoopConfig = config["loop"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(loop.seed)  # the same initial weights on every rank
    policy: nn.Module = config["build_policy"]().to(device)
    denoiser: Denoiser = config["build_denoiser"](policy)
    if config.get("build_reference") is not None:  # reference_mode "base": another model's weights
        reference = FrozenCopyReference(config["build_reference"]().to(device))
    else:
        reference = REFERENCES[loop.reference](policy)  # built from the unwrapped policy, before DDP
    if loop.gradient_checkpointing:  # after the reference copy, which runs without gradients anyway
        enable_gradient_checkpointing(policy)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=loop.lr)
    log_metrics = mlflow_logger(config.get("mlflow"), rank)

    position = {"step": 0, "epoch": 0, "micro": 0}
    checkpoint = ray.train.get_checkpoint() or (
        ray.train.Checkpoint(loop.resume_from) if loop.resume_from else None
    )
    engine = None
    if loop.zero_stage:
        engine = zero_engine(
            policy,
            opt,
            stage=loop.zero_stage,
            micro_batch=loop.micro_batch,
            grad_accum=loop.grad_accum,
            max_grad_norm=loop.max_grad_norm,
            bf16=loop.mixed_precision == "bf16",
        )
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, weights_only=False, map_location=device)
            if engine is not None:
                load_zero_state(engine, d)
        if loop.zero_stage != 3:  # stage 3's partitioned parameters came back with the engine's state
            policy.load_state_dict(state["model"])
        if engine is None:
            opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"].cpu())
        position = {k: state[k] for k in position}

    if engine is not None:
        model = engine
    else:
        model = ray.train.torch.prepare_model(policy) if world > 1 else policy
    step = AlignmentStep(model, denoiser, reference, loop.step)
    objective = loop.step.objective
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if loop.mixed_precision == "bf16" else nullcontext()
    )

    real: RealClips | None = config.get("real") if loop.uses_real else None
    if loop.uses_real and real is None:
        raise ValueError("real_batch_size > 0 and lambda_real > 0, but fit was given no real clips")

    def load(rows: dict[str, np.ndarray], epoch: int, global_step: int, index: int):
        """Micro-batch ``index`` of optimizer step ``global_step``: the batch and its noise."""
        if objective == "dpo":
            batch = load_pairs(rows, loop.text_embeds_dir)
        else:
            batch = load_samples(rows, objective)
        real_seeds = None
        if real is not None:  # the slot in the global batch fixes the draw, not the rank alone
            batch, real_seeds = with_real(batch, real, loop, global_step, rank * loop.grad_accum + index)
        batch = to_device(batch, device)
        seeds = [row_seed(loop.seed, epoch, row_id) for row_id in batch.ids]
        return batch, step.draw_noise_per_sample(batch, seeds, real_seeds)

    def optimizer_step(micro_batches: list, global_step: int) -> dict[str, float]:
        q, ref_errs, per_micro = None, [None] * len(micro_batches), None
        if objective == "kto":  # Q and λ1's mean over the whole global batch: every micro-batch, worker
            with autocast:
                rewards, ref_errs = zip(*(step.kto_rewards(b, d) for b, d in micro_batches), strict=True)
            q = L.kto_reference_point(torch.cat(rewards).float())
            desirable = torch.cat([b.desirable for b, _ in micro_batches])
            per_micro = L.kto_desirable_per_micro_batch(desirable, len(micro_batches))
        global_terms = {"step": global_step, "reference_point": q, "desirable_per_micro_batch": per_micro}
        pending = []
        for i, (batch, draw) in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            if engine is not None:  # DeepSpeed scales by grad_accum and steps at the boundary itself
                with autocast:
                    loss, stats = step.loss(batch, draw, ref_err=ref_errs[i], **global_terms)
                engine.backward(loss)
                engine.step()
            else:
                with nullcontext() if last or world == 1 else model.no_sync():  # all-reduce once per step
                    with autocast:
                        loss, stats = step.loss(batch, draw, ref_err=ref_errs[i], **global_terms)
                    (loss / loop.grad_accum).backward()
            pending.append(stats)
        if engine is not None:
            norm = engine.get_global_grad_norm()  # None until the first optimizer step
            grad_norm = float("nan") if norm is None else float(norm)
        else:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, loop.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
        metrics = {k: float(torch.stack([s[k] for s in pending]).float().mean()) for k in pending[0]}
        return global_mean(metrics | {"grad_norm": float(grad_norm)}, world)

    shard = ray.train.get_dataset_shard("train")
    global_step, epoch, skip = position["step"], position["epoch"], position["micro"]
    resumed_from = global_step  # reported, so a restart from a checkpoint is visible in the metrics
    micro_batches: list = []
    t_first, samples = None, 0  # throughput counts from the end of this run's first step (warm-up)
    per_sample = 2 if objective == "dpo" else 1  # a pair is two samples
    while global_step < loop.max_steps:
        micro = 0
        for rows in shard.iter_batches(batch_size=loop.micro_batch, batch_format="numpy", drop_last=True):
            if micro < skip:  # consumed before the checkpoint this run resumed from
                micro += 1
                continue
            micro_batches.append(load(rows, epoch, global_step, len(micro_batches)))
            micro += 1
            if len(micro_batches) < loop.grad_accum:
                continue
            metrics = optimizer_step(micro_batches, global_step)
            micro_batches = []
            global_step += 1
            metrics |= {"lr": loop.lr, "step": global_step, "epoch": epoch}
            metrics["resumed_from_step"] = resumed_from
            if t_first is None:
                t_first = time.perf_counter()
            else:  # includes data loading, reporting and checkpointing
                samples += per_sample * loop.micro_batch * loop.grad_accum * world
                metrics["samples_per_s"] = samples / (time.perf_counter() - t_first)
            log_metrics(metrics, global_step)
            # Ray Train v2's report blocks until the controller polls (every ~2 s), so it is called
            # only with checkpoints, by every rank at the same steps; per-step metrics go to MLflow.
            if global_step % loop.checkpoint_every == 0 or global_step == loop.max_steps:
                at = {"step": global_step, "epoch": epoch, "micro": micro} if rank == 0 else None
                report_step(metrics, policy, opt, at, engine, loop.zero_stage)
            if global_step >= loop.max_steps:
                break
        if micro == 0 and skip == 0:
            raise ValueError(
                f"rank {rank}: the data shard holds fewer than micro_batch={loop.micro_batch} rows"
            )
        skip, epoch = 0, epoch + 1


def fit(
    loop: TrainLoopConfig,
    build_policy: Callable[[], nn.Module],
    build_denoiser: Callable[[nn.Module], Denoiser],
    table: pa.Table,
    *,
    num_workers: int,
    cpus_per_worker: float,
    storage_path: str,
    name: str,
    max_failures: int = 0,
    build_reference: Callable[[], nn.Module] | None = None,
    mlflow: MlflowTarget | None = None,
    use_gpu: bool = False,
    real: RealClips | None = None,
) -> ray.train.Result:
    """Runs the loop on ``num_workers`` workers over a training table; returns Ray's Result.

    Args:
        loop: the loop settings.
        build_policy: builds the policy (with LoRA adapters for reference ``lora``); pickled to workers.
        build_denoiser: the model family's adapter for a built policy.
        table: a ``pairs`` table for ``dpo``, else a ``samples`` table (``ipo_ray.data.schemas``), with
            absolute paths (``ipo_ray.align.preflight.check_training_table`` resolves and checks them).
        num_workers: Train workers. cpus_per_worker: fractional CPUs each (leave some for Ray Data).
        storage_path, name: where Ray Train writes checkpoints. max_failures: worker-group restarts.
        build_reference: builds the model the frozen reference copies (IPO's base-model reference);
            None = the policy as built.
        mlflow: per-step metrics from rank 0 into this run; None = none.
        use_gpu: one GPU per worker (NCCL); bf16 autocast needs it.
        real: the real clips of the λ2 term (paths only; each worker loads what it draws); needed
            when ``loop.uses_real``, ignored otherwise.
    """
    if loop.mixed_precision == "bf16" and not use_gpu:
        raise ValueError("mixed_precision 'bf16' is for GPU workers; CPU trains in fp32")
    if loop.uses_real and (real is None or len(real) < loop.real_batch_size):
        have = 0 if real is None else len(real)
        raise ValueError(
            f"real_batch_size={loop.real_batch_size} with lambda_real > 0 needs at least that many real "
            f"clips, got {have}; pass more, or set real_batch_size (or lambda_real) to 0"
        )
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the same rows in the same order on a resumed run
    trainer = ray.train.torch.TorchTrainer(
        train_func,
        train_loop_config={
            "loop": loop,
            "build_policy": build_policy,
            "build_denoiser": build_denoiser,
            "build_reference": build_reference,
            "mlflow": mlflow,
            "real": real,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus_per_worker}
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": ray.data.from_arrow(table)},
    )
    return trainer.fit()


def load_checkpoint_into(policy: nn.Module, checkpoint: ray.train.Checkpoint) -> dict[str, int]:
    """Loads a checkpoint's weights into ``policy``; returns its position (step, epoch, micro)."""
    with checkpoint.as_directory() as d:
        state = torch.load(Path(d) / STATE_FILE, weights_only=False)
    policy.load_state_dict(state["model"])
    return {k: state[k] for k in ("step", "epoch", "micro")}
