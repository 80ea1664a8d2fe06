"""Config section `align`: generator alignment with Ray Train (objective, β, regularisers, workers).

`ipo_ray.align.run.align_generator` reads this section; builders turn it into the plain
`StepConfig` / `TrainLoopConfig` the Ray Train workers receive (they never see the section).
"""

from typing import Literal, Self

from pydantic import Field, model_validator

from ipo_ray.config.base import Section, Seed, raise_problems

# The references' β on the per-element-mean error scale (see ipo_ray/align/losses.py).
BETA_DEFAULTS = {"dpo": 5000.0, "kto": 1000.0}


class AlignConfig(Section):
    """Generator alignment with Ray Train: objective, β, regularisers, optimiser, workers."""

    objective: Literal["dpo", "kto", "rwl", "rs"] = Field(
        "dpo",
        description=(
            "Loss: dpo = Diffusion-DPO on best-vs-worst pairs (IPO Eq. 8), kto = Diffusion-KTO on "
            "Good/Bad samples (IPO Eq. 5-6), rwl = LiFT reward-weighted learning (Eq. 3), rs = rejection "
            "sampling: plain diffusion loss on samples Good on every dimension (LiFT Eq. 4)."
        ),
    )
    beta: float | None = Field(
        None,
        gt=0,
        description=(
            "KL strength of dpo/kto on the per-element-mean error scale; null = the references' "
            "defaults (DPO 5000, KTO 1000). Unused by rwl and rs."
        ),
    )
    kto_desirable_weight: float = Field(1.0, ge=0, description="KTO weight λ_D of desirable samples.")
    kto_undesirable_weight: float = Field(1.0, ge=0, description="KTO weight λ_U of undesirable samples.")
    lambda_preferred: float = Field(
        0.2,
        ge=0,
        description="λ1: NLL weight on preferred samples (DPO winners, KTO desirables; IPO Eq. 9).",
    )
    lambda_real: float = Field(
        0.1,
        ge=0,
        description=(
            "λ2: NLL weight on real videos (IPO Eq. 9: 0.1, LiFT Eq. 3: 1); 0 = no real videos are "
            "drawn, at no cost."
        ),
    )
    real_batch_size: int = Field(
        2,
        ge=0,
        description=(
            "Real videos drawn beside every micro-batch for the λ2 term (one policy forward over both); "
            "0 = no real videos, at no cost."
        ),
    )
    real_videos: str | None = Field(
        None,
        description=(
            "The real videos of the λ2 term: a committed real_videos table (Parquet with its manifest, "
            "written by ipo_ray.data.write_table; video paths relative to its folder; clips at the "
            "generator's frame size), encoded once per run. Needed by the cogvideox and wan backends; "
            "null with the world backend = clean clips of the world's web set (world.web)."
        ),
    )
    real_web_clips: int = Field(
        256,
        ge=1,
        description="World backend, real_videos null: how many clean web-set clips are the real videos.",
    )
    lr: float = Field(2e-5, gt=0, description="AdamW learning rate (IPO trains at 2e-5).")
    max_steps: int = Field(100, ge=1, description="Optimizer steps per round.")
    batch_size: int = Field(
        8,
        ge=1,
        description=(
            "Global batch in samples (pairs for dpo) per optimizer step = micro_batch × accumulation × "
            "workers; must divide evenly. IPO trains KTO at 128 because Q is noisy at small batch."
        ),
    )
    micro_batch: int = Field(2, ge=1, description="Samples (pairs for dpo) per worker per forward.")
    workers: int = Field(2, ge=1, description="Ray Train workers (DDP: gloo on CPU, NCCL on GPU).")
    cpus_per_worker: float = Field(
        0.5,
        gt=0,
        description=(
            "CPUs each Train worker holds; fractional on small machines (on 2 cores, whole-CPU workers "
            "beside the critic and generator deadlock silently)."
        ),
    )
    use_gpu: bool = Field(False, description="One GPU per Train worker.")
    reference: Literal["frozen_copy", "lora"] = Field(
        "frozen_copy",
        description=(
            "Reference model: a frozen copy of the policy, or (lora) the policy with its LoRA adapters "
            "switched off, so no second copy of the weights is held."
        ),
    )
    lora_rank: int = Field(16, ge=1, description="LoRA rank when reference is lora.")
    reference_mode: Literal["iterative", "base"] = Field(
        "iterative",
        description=(
            "IPO Eq. 10: iterative = the reference is the previous round's model (the one being trained "
            "from); base = the reference stays the round-0 model."
        ),
    )
    checkpoint_every: int = Field(
        50, ge=1, description="Optimizer steps between Ray Train checkpoints (the last step is always one)."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    max_failures: int = Field(
        1, ge=0, description="Worker-group restarts from the last checkpoint after a failure."
    )
    rs_threshold: float = Field(
        0.0,
        ge=0,
        description=(
            "Rejection sampling keeps samples whose pass flag is set (Good on every dimension, LiFT "
            "Eq. 4) and whose reward is at least this; 0 = the pass flag alone. Rewards taken as an "
            "expectation over votes fall below 0.9 even when every majority verdict is Good."
        ),
    )
    mixed_precision: Literal["no", "bf16"] = Field(
        "no", description="bf16 autocast of forwards on GPU; CPU trains in fp32 (bf16 needs use_gpu)."
    )
    gradient_checkpointing: bool = Field(
        False,
        description=(
            "Recompute the generator's transformer blocks in the backward pass (diffusers' gradient "
            "checkpointing): about a third more compute per step, activations of one block instead of "
            "all; full-size CogVideoX/Wan at production resolution need it. Same gradients either way."
        ),
    )
    zero_stage: Literal[0, 1, 2, 3] = Field(
        0,
        description=(
            "DeepSpeed ZeRO stage instead of DDP: 1 partitions optimizer state, 2 also gradients, 3 "
            "also parameters (gathered for checkpoints and export; a frozen-copy reference stays whole "
            "on every worker). On CPU DeepSpeed runs with DS_ACCELERATOR=cpu over gloo; 0 = plain DDP."
        ),
    )
    seed: Seed = Field(0, description="Seeds the noise draws and any fresh weights of alignment.")

    @model_validator(mode="after")
    def _check_batch(self) -> Self:
        problems: list[tuple[str, str]] = []
        per_step = self.micro_batch * self.workers
        if self.batch_size % per_step:
            problems.append(
                (
                    "batch_size",
                    f"must be a multiple of micro_batch × workers = {per_step}, got {self.batch_size}",
                )
            )
        if self.uses_real and self.real_videos is None and self.real_batch_size > self.real_web_clips:
            problems.append(
                (
                    "real_batch_size",
                    f"must be at most real_web_clips ({self.real_web_clips}), got {self.real_batch_size}",
                )
            )
        if self.mixed_precision == "bf16" and not self.use_gpu:
            problems.append(("mixed_precision", "bf16 autocast needs use_gpu: true; CPU trains in fp32"))
        raise_problems(problems)
        return self

    @property
    def uses_real(self) -> bool:
        """Whether training draws real videos (the λ2 term): λ2 > 0 and a real batch size."""
        return self.lambda_real > 0 and self.real_batch_size > 0

    @property
    def grad_accum(self) -> int:
        """Micro-batches per worker per optimizer step."""
        return self.batch_size // (self.micro_batch * self.workers)

    @property
    def resolved_beta(self) -> float | None:
        """β with the reference default filled in (None for rwl and rs, which have none)."""
        return self.beta if self.beta is not None else BETA_DEFAULTS.get(self.objective)
