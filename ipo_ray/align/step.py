"""One alignment training step in plain torch: cached latents and text embeddings → loss.

The step is what every Ray Train worker runs; it knows nothing of Ray. For a batch it

1. noises the samples (a DPO pair's winner and loser share noise and timestep, as in the references),
2. runs the reference forward under ``inference_mode`` on the preference part only (objectives that
   need it) — first, so its transient activations never stack on the policy's saved ones,
3. runs ONE policy forward over everything that needs the policy: winners and losers (or KTO/RWL/RS
   samples) and the real videos of the NLL regulariser, concatenated along the batch,
4. computes the objective's loss (``ipo_ray.align.losses``) plus λ1·NLL(preferred) + λ2·NLL(real).

Objectives are chosen by name from :data:`OBJECTIVES`: ``dpo`` (pairs), ``kto`` (samples with
desirable labels), ``rwl`` (samples with LiFT reward weights), ``rs`` (samples already filtered by
``passes_rejection_sampling``, weight 1).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ipo_ray.align import losses as L
from ipo_ray.align.batches import NoiseDraw, PairBatch, SampleBatch
from ipo_ray.align.models import Denoiser, Reference

Batch = PairBatch | SampleBatch
# (policy_err (N,), ref_err (N,) or None, batch, config) -> (loss, stats, policy errors of preferred samples)
ObjectiveFn = Callable[[Tensor, Tensor | None, Batch, "StepConfig"], tuple[Tensor, L.Stats, Tensor | None]]


@dataclass(frozen=True)
class Objective:
    """A loss with what it needs: the batch kind, whether a reference forward runs, its default β."""

    fn: ObjectiveFn
    batch_type: type
    needs_reference: bool
    default_beta: float | None


def _dpo(policy_err: Tensor, ref_err: Tensor | None, batch: Batch, cfg: "StepConfig"):
    pw, pl = policy_err.chunk(2)
    rw, rl = ref_err.chunk(2)
    loss, stats = L.diffusion_dpo_loss(pw, pl, rw, rl, cfg.resolved_beta)
    return loss, stats, pw


def _kto(
    policy_err: Tensor,
    ref_err: Tensor | None,
    batch: Batch,
    cfg: "StepConfig",
    reference_point: Tensor | None = None,
):
    if batch.desirable is None:
        raise ValueError("objective 'kto' needs SampleBatch.desirable (one bool label per sample)")
    loss, stats = L.diffusion_kto_loss(
        policy_err,
        ref_err,
        batch.desirable,
        cfg.resolved_beta,
        cfg.kto_desirable_weight,
        cfg.kto_undesirable_weight,
        reference_point=reference_point,
    )
    # No desirable sample in this micro-batch: no NLL term (its divisor may be 0 when none is desirable
    # in the whole batch, and 0 / 0 is NaN).
    return loss, stats, (policy_err[batch.desirable] if batch.desirable.any() else None)


def _rwl(policy_err: Tensor, ref_err: Tensor | None, batch: Batch, cfg: "StepConfig"):
    if batch.weights is None:
        raise ValueError("objective 'rwl' needs SampleBatch.weights (e.g. lift_reward of each video)")
    loss, stats = L.reward_weighted_loss(policy_err, batch.weights)
    return loss, stats, None  # the loss is already an NLL on the (weighted) samples


def _rs(policy_err: Tensor, ref_err: Tensor | None, batch: Batch, cfg: "StepConfig"):
    loss, stats = L.reward_weighted_loss(policy_err, torch.ones_like(policy_err))
    return loss, stats, None


OBJECTIVES: dict[str, Objective] = {
    "dpo": Objective(_dpo, PairBatch, needs_reference=True, default_beta=L.DPO_BETA_DEFAULT),
    "kto": Objective(_kto, SampleBatch, needs_reference=True, default_beta=L.KTO_BETA_DEFAULT),
    "rwl": Objective(_rwl, SampleBatch, needs_reference=False, default_beta=None),
    "rs": Objective(_rs, SampleBatch, needs_reference=False, default_beta=None),
}

# Stable, namespaced metric names (STYLE 12) for the losses' stats.
METRIC_NAMES: dict[str, str] = {
    "implicit_acc": "rewards/implicit_acc",
    "reward_margin": "rewards/margin",
    "reward_chosen": "rewards/chosen",
    "reward_rejected": "rewards/rejected",
    "reward_desirable": "rewards/desirable",
    "reward_undesirable": "rewards/undesirable",
    "reference_point": "kto/reference_point",
    "mean_weight": "rwl/mean_weight",
    "policy_err": "train/policy_err",
    "ref_err": "train/ref_err",
    "nll_preferred": "train/nll_preferred",
    "nll_real": "train/nll_real",
}


@dataclass(frozen=True)
class StepConfig:
    """Loss settings of the step; validated at construction.

    Args:
        objective: a key of :data:`OBJECTIVES`.
        beta: β of DPO/KTO; None takes the reference default (DPO 5000, KTO 1000).
        lambda_preferred: λ1, NLL weight on preferred samples (IPO Eq. 9: 0.2; unused by rwl/rs).
        lambda_real: λ2, NLL weight on real videos (IPO: 0.1, LiFT: 1).
        kto_desirable_weight: λ_D of KTO. kto_undesirable_weight: λ_U of KTO.
    """

    objective: str = "dpo"
    beta: float | None = None
    lambda_preferred: float = L.LAMBDA_PREFERRED_DEFAULT
    lambda_real: float = L.LAMBDA_REAL_DEFAULT
    kto_desirable_weight: float = 1.0
    kto_undesirable_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {self.objective!r}")
        if self.beta is not None and not self.beta > 0:
            raise ValueError(f"beta must be > 0 (got {self.beta}); leave it unset for the reference default")
        for name in ("lambda_preferred", "lambda_real", "kto_desirable_weight", "kto_undesirable_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def resolved_beta(self) -> float:
        return self.beta if self.beta is not None else OBJECTIVES[self.objective].default_beta


class AlignmentStep:
    """Computes the alignment loss of one (micro-)batch; the caller owns backward and the optimizer.

    Args:
        policy: the model being trained (a diffusers transformer, possibly with LoRA adapters).
        denoiser: the model family's forward and parametrisation (``ipo_ray.align.models``).
        reference: from ``models.REFERENCES``; required by objectives that need a reference.
        config: loss settings.
    """

    def __init__(
        self, policy: nn.Module, denoiser: Denoiser, reference: Reference | None, config: StepConfig
    ):
        self.objective = OBJECTIVES[config.objective]
        if self.objective.needs_reference and reference is None:
            raise ValueError(f"objective {config.objective!r} needs a reference ('frozen_copy' or 'lora')")
        self.policy, self.denoiser, self.reference, self.config = policy, denoiser, reference, config

    def draw_noise(self, batch: Batch, generator: torch.Generator | None = None) -> NoiseDraw:
        """Noise and timesteps for a batch: one draw per pair (shared by winner and loser) or sample.

        Drawn on the CPU (so a seed gives the same draw on every device), then moved to the latents'.
        """
        x0 = batch.winner if isinstance(batch, PairBatch) else batch.latents
        param = self.denoiser.parametrisation

        def draw(like: Tensor) -> tuple[Tensor, Tensor]:
            noise = torch.randn(like.shape, generator=generator, dtype=like.dtype)
            return noise.to(like.device), param.sample_timesteps(len(like), generator).to(like.device)

        noise, timesteps = draw(x0)
        real_noise, real_t = draw(batch.real) if batch.real is not None else (None, None)
        return NoiseDraw(noise, timesteps, real_noise, real_t)

    def draw_noise_per_sample(
        self, batch: Batch, seeds: list[int], real_seeds: list[int] | None = None
    ) -> NoiseDraw:
        """Noise and timestep of each sample (pair) and real video from its own seeded CPU generator.

        A sample's draw then depends on its seed only, not on which worker or micro-batch it lands in,
        so 1 worker × 2 micro-batches and 2 workers × 1 see the same noise. Real videos get theirs from
        ``real_seeds`` (``ipo_ray.align.real.real_draw`` ties them to the micro-batch's slot).

        Args:
            batch: B pairs or samples, and R real videos or none.
            seeds: B seeds, one per pair (shared by winner and loser) or sample.
            real_seeds: R seeds, one per real video; required exactly when the batch has real videos.
        """
        x0 = batch.winner if isinstance(batch, PairBatch) else batch.latents
        if len(seeds) != len(x0):
            raise ValueError(f"need one seed per sample, got {len(seeds)} for {len(x0)}")
        noise, timesteps = self._seeded(x0, seeds)
        if batch.real is None:
            if real_seeds is not None:
                raise ValueError("real_seeds given for a batch without real videos")
            return NoiseDraw(noise, timesteps)
        if real_seeds is None or len(real_seeds) != len(batch.real):
            got = None if real_seeds is None else len(real_seeds)
            raise ValueError(f"need one real seed per real video, got {got} for {len(batch.real)}")
        return NoiseDraw(noise, timesteps, *self._seeded(batch.real, real_seeds))

    def _seeded(self, like: Tensor, seeds: list[int]) -> tuple[Tensor, Tensor]:
        """(len(seeds), *like.shape[1:]) noise and (len(seeds),) timesteps, one CPU generator per seed."""
        param = self.denoiser.parametrisation
        noises, times = [], []
        for seed in seeds:
            g = torch.Generator().manual_seed(seed)
            noises.append(torch.randn((1, *like.shape[1:]), generator=g, dtype=like.dtype))
            times.append(param.sample_timesteps(1, g))
        return torch.cat(noises).to(like.device), torch.cat(times).to(like.device)

    @torch.no_grad()
    def kto_rewards(self, batch: SampleBatch, draw: NoiseDraw) -> tuple[Tensor, Tensor]:
        """(B,) implicit KTO rewards ref_err − policy_err and (B,) ref_err, without gradient.

        The Ray loop computes them for every micro-batch of an optimizer step first, so that KTO's
        reference point Q is the mean over the whole accumulated global batch (all-reduced across
        workers), as in the reference implementation at its full batch, not a per-micro-batch estimate.
        The reference errors are handed back to :meth:`loss` so the reference runs once per sample.
        """
        x_t, target = self.denoiser.parametrisation.noisy_and_target(
            batch.latents, draw.noise, draw.timesteps
        )
        with self.reference() as ref_model:
            ref_err = L.per_sample_mse(
                self.denoiser.forward(ref_model, x_t, draw.timesteps, batch.text_embeds), target
            )
        policy_err = L.per_sample_mse(
            self.denoiser.forward(self.policy, x_t, draw.timesteps, batch.text_embeds), target
        )
        return ref_err - policy_err, ref_err

    def loss(
        self,
        batch: Batch,
        draw: NoiseDraw,
        step: int = 0,
        reference_point: Tensor | None = None,
        ref_err: Tensor | None = None,
        desirable_per_micro_batch: Tensor | None = None,
    ) -> tuple[Tensor, L.Stats]:
        """The loss of one batch under one noise draw.

        Args:
            batch: a :class:`PairBatch` for ``dpo``, a :class:`SampleBatch` otherwise.
            draw: from :meth:`draw_noise` (explicit so that runs can be replayed and split exactly).
            step: the optimizer step, named in the error if the loss is not finite.
            reference_point: KTO's Q computed over the global batch (:meth:`kto_rewards`); None lets
                the loss estimate it from this batch (all-reduced across workers).
            ref_err: (B,) reference errors of this batch under this draw (from :meth:`kto_rewards`);
                None runs the reference forward here.
            desirable_per_micro_batch: KTO's desirable samples of the global batch per micro-batch
                (``losses.kto_desirable_per_micro_batch``): the λ1 term is this batch's sum of desirable
                errors over it, so the accumulated term is the mean over the global batch's desirable
                samples. None counts this batch alone (all-reduced across workers).

        Returns:
            loss: 0-d tensor with gradient to the policy. stats: detached, namespaced metrics.

        Raises:
            FloatingPointError: the loss is NaN or infinite; the message names the step and the batch.
        """
        if not isinstance(batch, self.objective.batch_type):
            raise ValueError(
                f"objective {self.config.objective!r} takes a {self.objective.batch_type.__name__}"
            )
        if desirable_per_micro_batch is not None and self.config.objective != "kto":
            raise ValueError(f"desirable_per_micro_batch is KTO's; objective is {self.config.objective!r}")
        if isinstance(batch, PairBatch):
            x0 = torch.cat([batch.winner, batch.loser])
            noise, t = draw.noise.repeat(2, *[1] * (draw.noise.dim() - 1)), draw.timesteps.repeat(2)
            text = torch.cat([batch.text_embeds, batch.text_embeds])
        else:
            x0, noise, t, text = batch.latents, draw.noise, draw.timesteps, batch.text_embeds
        n_pref = len(x0)
        x_t, target = self.denoiser.parametrisation.noisy_and_target(x0, noise, t)
        if batch.real is not None:
            real_x_t, real_target = self.denoiser.parametrisation.noisy_and_target(
                batch.real, draw.real_noise, draw.real_timesteps
            )
            x_in, t_in = torch.cat([x_t, real_x_t]), torch.cat([t, draw.real_timesteps])
            text_in, target_in = torch.cat([text, batch.real_text_embeds]), torch.cat([target, real_target])
        else:
            x_in, t_in, text_in, target_in = x_t, t, text, target

        # The reference forward runs first, while no policy activations are held for backward: its
        # transient activations then never add to the policy's peak (bench_align measures this).
        if ref_err is not None:
            ref_err = ref_err.detach()
        elif self.objective.needs_reference:
            # inference_mode skips autograd's version counters too (cheaper than no_grad); the clone
            # turns the result into an ordinary tensor the loss's autograd graph may use.
            with torch.inference_mode(), self.reference() as ref_model:
                ref_err = L.per_sample_mse(self.denoiser.forward(ref_model, x_t, t, text), target)
            ref_err = ref_err.clone()

        # One policy forward over preference and real samples together (one kernel launch sequence).
        err = L.per_sample_mse(self.denoiser.forward(self.policy, x_in, t_in, text_in), target_in)
        policy_err, real_err = err[:n_pref], (err[n_pref:] if batch.real is not None else None)

        if reference_point is not None:
            if self.config.objective != "kto":
                raise ValueError(f"reference_point is KTO's; objective is {self.config.objective!r}")
            loss, stats, preferred_err = _kto(policy_err, ref_err, batch, self.config, reference_point)
        else:
            loss, stats, preferred_err = self.objective.fn(policy_err, ref_err, batch, self.config)
        divisor = desirable_per_micro_batch
        if divisor is None and self.config.objective == "kto" and self.config.lambda_preferred > 0:
            # Outside the ``preferred_err`` branch: every worker joins the all-reduce, with or without
            # desirable samples of its own.
            divisor = L.kto_desirable_per_micro_batch(batch.desirable, micro_batches=1)
        loss, nll_stats = L.nll_regularisers(
            loss, preferred_err, real_err, self.config.lambda_preferred, self.config.lambda_real, divisor
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss ({loss.item()}) at step {step}, batch {list(batch.ids)}"
            )
        if self.config.objective == "kto" and self.config.lambda_preferred > 0:
            # A micro-batch without desirable samples adds no λ1 term (its share of the global mean is
            # 0); its stat is 0 so that every micro-batch and worker reports the same keys.
            nll_stats.setdefault("nll_preferred", loss.detach().new_zeros(()))
        metrics = {METRIC_NAMES[k]: v for k, v in (stats | nll_stats).items()}
        metrics["train/loss"] = loss.detach()
        return loss, metrics
