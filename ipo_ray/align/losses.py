"""Preference-optimisation losses as pure tensor functions of per-sample diffusion errors.

Every loss takes per-sample errors (the mean squared error of one sample's prediction over all of its
non-batch elements, from :func:`per_sample_mse`), never models, and returns ``(loss, stats)``: ``loss`` a
0-d tensor, ``stats`` a dict of detached 0-d tensors for logging.

Conventions follow the published reference implementations, whose sign and scale this module must
match exactly (tests/align/test_losses.py checks the published facts):

- Diffusion-DPO: Salesforce ``DiffusionDPO/train.py`` (Wallace et al. 2024, Eq. 14; IPO Eq. 8).
- Diffusion-KTO: ``jacklishufan/diffusion-kto`` ``train_kto_sd_v1.5.py`` (Li et al. 2024; IPO Eq. 5-6).
- Reward-weighted learning and rejection sampling: LiFT Eq. 2-4; NLL regularisers: IPO Eq. 7 and 9.

Because the errors are means over elements (not sums), β lives on the per-element-mean scale: the
references' β = 5000 (DPO) and β = 1000 (KTO) are tuned for that scale and are the defaults here.
"""

from collections.abc import Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from ipo_ray.vocab import DIMENSIONS, LIFT_VERDICT_REWARD

DPO_BETA_DEFAULT = 5000.0
KTO_BETA_DEFAULT = 1000.0
LAMBDA_PREFERRED_DEFAULT = 0.2  # IPO Eq. 9, λ1
LAMBDA_REAL_DEFAULT = 0.1  # IPO Eq. 7/9, λ2 (LiFT Eq. 3 uses λ = 1)

Stats = dict[str, Tensor]


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (got {beta}); it scales the implicit reward, e.g. 5000 for DPO")


def _check_same_shape(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(shapes.values()))
    if len(first) != 1 or any(s != first for s in shapes.values()):
        raise ValueError(f"expected per-sample errors of one shape (B,), got {shapes}")


def per_sample_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each sample over all its non-batch elements.

    Args:
        pred: (B, ...) model prediction, e.g. (B, F, C, H, W) for a video latent.
        target: (B, ...) regression target of the same shape.

    Returns:
        (B,) per-sample errors in float32 (or float64 if the inputs are), as in the references'
        ``F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=non-batch dims)``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() < 2:
        raise ValueError(f"expected a batch of samples (B, ...), got shape {tuple(pred.shape)}")
    dtype = torch.promote_types(pred.dtype, torch.float32)
    return (pred.to(dtype) - target.to(dtype)).pow(2).flatten(1).mean(dim=1)


def diffusion_dpo_loss(
    policy_err_w: Tensor,
    policy_err_l: Tensor,
    ref_err_w: Tensor,
    ref_err_l: Tensor,
    beta: float = DPO_BETA_DEFAULT,
) -> tuple[Tensor, Stats]:
    """Diffusion-DPO loss, Salesforce convention (Wallace et al. 2024 Eq. 14; IPO Eq. 8).

    inside = −(β/2)·[(policy_err_w − policy_err_l) − (ref_err_w − ref_err_l)];
    loss = −mean(log σ(inside)). The factor T·ω(λ_t) of the paper is folded into β, and β is on the
    per-element-mean scale of the errors (reference default 5000). diffusers' port writes the same
    loss as −log σ(β'·(ref_diff − model_diff)) with β' = β/2 (its default 2500).

    Args:
        policy_err_w: (B,) policy error on the preferred (winner) samples.
        policy_err_l: (B,) policy error on the rejected (loser) samples, same noise and timestep.
        ref_err_w: (B,) reference-model error on the winners (no gradient needed).
        ref_err_l: (B,) reference-model error on the losers.
        beta: KL-regularisation strength, > 0.

    Returns:
        loss: 0-d tensor.
        stats: ``implicit_acc`` (fraction of pairs with inside > 0), ``reward_margin`` (mean inside),
        ``reward_chosen`` / ``reward_rejected`` (mean implicit rewards −(β/2)·(policy_err − ref_err)),
        ``policy_err``, ``ref_err`` (mean errors over winners and losers, to watch for drift).
    """
    _check_beta(beta)
    _check_same_shape(
        policy_err_w=policy_err_w, policy_err_l=policy_err_l, ref_err_w=ref_err_w, ref_err_l=ref_err_l
    )
    scale = -0.5 * beta
    reward_w = scale * (policy_err_w - ref_err_w)
    reward_l = scale * (policy_err_l - ref_err_l)
    inside = scale * ((policy_err_w - policy_err_l) - (ref_err_w - ref_err_l))
    loss = -F.logsigmoid(inside).mean()
    stats = {
        "implicit_acc": (inside > 0).float().mean(),
        "reward_margin": inside.mean(),
        "reward_chosen": reward_w.mean(),
        "reward_rejected": reward_l.mean(),
        "policy_err": 0.5 * (policy_err_w.mean() + policy_err_l.mean()),
        "ref_err": 0.5 * (ref_err_w.mean() + ref_err_l.mean()),
    }
    return loss, {k: v.detach() for k, v in stats.items()}


def kto_reference_point(reward: Tensor) -> Tensor:
    """Diffusion-KTO reference point Q = max(0, mean implicit reward over the global batch), detached.

    When ``torch.distributed`` is initialised the sum and count are all-reduced, so Q is the mean over
    every worker's samples (the reference averages per-worker means, which is the same for equal local
    batches). IPO §3.3 notes Q is noisy at small batch and trains at batch 128.

    Args:
        reward: (B,) implicit rewards ref_err − policy_err of this worker's samples.

    Returns:
        0-d tensor Q ≥ 0 without gradient.
    """
    reward = reward.detach()
    total = torch.stack(
        [reward.sum(), torch.tensor(float(reward.numel()), dtype=reward.dtype, device=reward.device)]
    )
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return (total[0] / total[1]).clamp(min=0)


def kto_desirable_per_micro_batch(desirable: Tensor, micro_batches: int) -> Tensor:
    """N / M: the global batch's desirable samples per micro-batch, detached — the λ1 term's divisor.

    N counts the desirable samples of every micro-batch of every worker, M = ``micro_batches`` · workers
    (sum and micro-batch count all-reduced as in :func:`kto_reference_point`). Accumulation and DDP average
    the micro-batch losses, so dividing each micro-batch's sum of desirable errors by N / M makes the λ1
    term the mean over all N desirable samples, however they fall into micro-batches; a per-micro-batch
    mean would weight the desirable samples of a sparse micro-batch more.

    Args:
        desirable: (B,) bool labels of this worker's samples in the step (its micro-batches concatenated).
        micro_batches: this worker's micro-batches in the step (the gradient accumulation steps).

    Returns:
        0-d float32 tensor ≥ 0 on ``desirable``'s device; 0 when no sample of the global batch is desirable.
    """
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be >= 1, got {micro_batches}")
    count = desirable.to(torch.bool).sum().to(torch.float32)  # on the device: no host sync
    total = torch.stack([count, count.new_tensor(float(micro_batches))])
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total[0] / total[1]


def diffusion_kto_loss(
    policy_err: Tensor,
    ref_err: Tensor,
    desirable: Tensor,
    beta: float = KTO_BETA_DEFAULT,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    reference_point: Tensor | float | None = None,
) -> tuple[Tensor, Stats]:
    """Diffusion-KTO loss with the sigmoid value function (Li et al. 2024; IPO Eq. 5-6).

    r = ref_err − policy_err; Q = :func:`kto_reference_point` (r) unless given; z = (2y − 1)·β·(r − Q);
    loss = mean(w_y·(1 − σ(z))), with w_y the desirable or undesirable weight.

    Args:
        policy_err: (B,) policy errors.
        ref_err: (B,) reference errors on the same noisy inputs.
        desirable: (B,) bool (or 0/1) labels y: True for Good/desirable samples.
        beta: > 0, per-element-mean scale (reference default 1000).
        desirable_weight: λ_D ≥ 0.
        undesirable_weight: λ_U ≥ 0.
        reference_point: a fixed Q (detached) instead of the batch estimate.

    Returns:
        loss: 0-d tensor.
        stats: ``reference_point`` (Q), ``implicit_acc`` (fraction with z > 0), ``reward_desirable`` /
        ``reward_undesirable`` (mean r − Q per class, 0 for an absent class), ``policy_err``, ``ref_err``.
    """
    _check_beta(beta)
    _check_same_shape(policy_err=policy_err, ref_err=ref_err, desirable=desirable)
    if desirable_weight < 0 or undesirable_weight < 0:
        raise ValueError(f"KTO weights must be >= 0, got {desirable_weight=} {undesirable_weight=}")
    y = desirable.to(torch.bool)
    reward = ref_err - policy_err
    if reference_point is None:
        q = kto_reference_point(reward)
    else:
        q = torch.as_tensor(reference_point, dtype=reward.dtype, device=reward.device).detach()
    centred = reward - q
    z = (2 * y.to(reward.dtype) - 1) * beta * centred
    weight = torch.where(y, desirable_weight, undesirable_weight).to(reward.dtype)
    loss = (weight * (1 - torch.sigmoid(z))).mean()
    zero = centred.new_zeros(())
    stats = {
        "reference_point": q,
        "implicit_acc": (z > 0).float().mean(),
        "reward_desirable": centred[y].mean() if y.any() else zero,
        "reward_undesirable": centred[~y].mean() if (~y).any() else zero,
        "policy_err": policy_err.mean(),
        "ref_err": ref_err.mean(),
    }
    return loss, {k: v.detach() for k, v in stats.items()}


def reward_weighted_loss(policy_err: Tensor, weights: Tensor) -> tuple[Tensor, Stats]:
    """Reward-weighted diffusion loss, LiFT Eq. 3 first term: mean(weight · err).

    The per-sample diffusion error stands in for −log p_θ(x|z) (the ELBO up to constants). With all
    weights 1 on the samples kept by :func:`passes_rejection_sampling` this is LiFT Eq. 4's first term.

    Args:
        policy_err: (B,) policy errors.
        weights: (B,) non-negative weights, e.g. :func:`lift_reward` of each video.

    Returns:
        loss: 0-d tensor. stats: ``policy_err`` (unweighted mean), ``mean_weight``.
    """
    _check_same_shape(policy_err=policy_err, weights=weights)
    if (weights < 0).any():
        raise ValueError("reward weights must be >= 0 (LiFT rewards lie in [0.05, 0.9])")
    weights = weights.to(policy_err.dtype)
    loss = (weights * policy_err).mean()
    return loss, {"policy_err": policy_err.detach().mean(), "mean_weight": weights.detach().mean()}


def nll_regularisers(
    preference_loss: Tensor,
    preferred_err: Tensor | None = None,
    real_err: Tensor | None = None,
    lambda_preferred: float = LAMBDA_PREFERRED_DEFAULT,
    lambda_real: float = LAMBDA_REAL_DEFAULT,
    preferred_divisor: Tensor | float | None = None,
) -> tuple[Tensor, Stats]:
    """Adds the NLL regularisers of IPO Eq. 9 (and Eq. 7, LiFT Eq. 3-4) to a preference loss.

    loss = preference_loss + λ1·mean(preferred_err) + λ2·mean(real_err); a term is skipped when its
    errors are None or its λ is 0. With ``preferred_divisor`` the λ1 term is sum(preferred_err) / divisor
    instead, so that a micro-batch contributes its share of a mean over the global batch.

    Args:
        preference_loss: 0-d tensor, the DPO/KTO/RWL loss.
        preferred_err: (B,) policy errors on preferred samples (DPO winners, KTO desirables).
        real_err: (R,) policy errors on real videos.
        lambda_preferred: λ1 ≥ 0 (IPO: 0.2).
        lambda_real: λ2 ≥ 0 (IPO: 0.1; LiFT: 1).
        preferred_divisor: > 0, e.g. :func:`kto_desirable_per_micro_batch`; None = the number of
            preferred errors given (a mean over this batch).

    Returns:
        loss: 0-d tensor. stats: ``nll_preferred`` and ``nll_real`` for the terms present (each the term
        as added, so its mean over micro-batches and workers is the global mean).
    """
    if lambda_preferred < 0 or lambda_real < 0:
        raise ValueError(f"NLL weights must be >= 0, got {lambda_preferred=} {lambda_real=}")
    if isinstance(preferred_divisor, int | float) and not preferred_divisor > 0:
        raise ValueError(f"preferred_divisor must be > 0, got {preferred_divisor}")
    loss, stats = preference_loss, {}
    for name, err, lam in (
        ("nll_preferred", preferred_err, lambda_preferred),
        ("nll_real", real_err, lambda_real),
    ):
        if err is None or lam == 0:
            continue
        if err.dim() != 1:
            raise ValueError(f"{name}: expected per-sample errors (B,), got shape {tuple(err.shape)}")
        if name == "nll_preferred" and preferred_divisor is not None:
            term = err.sum() / preferred_divisor
        else:
            term = err.mean()
        loss = loss + lam * term
        stats[name] = term.detach()
    return loss, stats


def _check_verdicts(verdicts: Mapping[str, str]) -> None:
    if set(verdicts) != set(DIMENSIONS):
        raise ValueError(f"verdicts must cover exactly the dimensions {DIMENSIONS}, got {sorted(verdicts)}")
    bad = {d: v for d, v in verdicts.items() if v not in LIFT_VERDICT_REWARD}
    if bad:
        raise ValueError(f"unknown verdicts {bad}; expected one of {sorted(LIFT_VERDICT_REWARD)}")


def lift_reward(verdicts: Mapping[str, str]) -> float:
    """LiFT Eq. 2: one video's reward, the mean over dimensions of {Good: 0.9, Normal: 0.2, Bad: 0.05}.

    Args:
        verdicts: dimension name (``ipo_ray.vocab.DIMENSIONS``) → "Good" / "Normal" / "Bad".

    Returns:
        The reward in [0.05, 0.9].
    """
    _check_verdicts(verdicts)
    return sum(LIFT_VERDICT_REWARD[v] for v in verdicts.values()) / len(verdicts)


def passes_rejection_sampling(verdicts: Mapping[str, str]) -> bool:
    """LiFT Eq. 4's filter: keep a video only if it is judged Good on every dimension."""
    _check_verdicts(verdicts)
    return all(v == "Good" for v in verdicts.values())
