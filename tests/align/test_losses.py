"""The losses against the published facts of the reference implementations and papers."""

import math

import pytest
import torch
import torch.nn.functional as F

from ipo_ray.align import losses as L
from ipo_ray.align.targets import DDPMParametrisation, FlowMatchingParametrisation, cogvideox_x0_error
from ipo_ray.vocab import DIMENSIONS


def _errs(b: int = 16, seed: int = 0, dtype=torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Per-element-mean errors of a trained model are O(0.1) and differ by O(1e-4) between models.
    base = 0.1 + 0.05 * torch.rand(4, b, generator=g, dtype=dtype)
    return list(base + 1e-4 * torch.randn(4, b, generator=g, dtype=dtype))


def test_per_sample_mse_reduces_all_non_batch_dims_of_video():
    pred, target = torch.randn(3, 2, 4, 5, 6), torch.randn(3, 2, 4, 5, 6)
    err = L.per_sample_mse(pred, target)
    assert err.shape == (3,)
    torch.testing.assert_close(err, F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3, 4)))


def test_dpo_identical_policy_and_reference_is_ln2():
    pw, pl, _, _ = _errs()
    loss, stats = L.diffusion_dpo_loss(pw, pl, pw.clone(), pl.clone())
    torch.testing.assert_close(loss, torch.tensor(math.log(2.0)))
    assert stats["reward_margin"] == 0 and stats["implicit_acc"] == 0


def test_dpo_swapping_winner_and_loser_flips_inside():
    pw, pl, rw, rl = _errs()
    _, s = L.diffusion_dpo_loss(pw, pl, rw, rl)
    _, s_swapped = L.diffusion_dpo_loss(pl, pw, rl, rw)
    torch.testing.assert_close(s_swapped["reward_margin"], -s["reward_margin"])
    torch.testing.assert_close(s_swapped["implicit_acc"], 1 - s["implicit_acc"])


def test_dpo_lower_policy_error_on_winner_means_positive_inside_and_loss_below_ln2():
    pw, pl, _, _ = _errs()
    loss, stats = L.diffusion_dpo_loss(pw - 1e-4, pl, pw, pl)
    assert stats["implicit_acc"] == 1 and stats["reward_margin"] > 0 and loss < math.log(2)


def test_dpo_matches_salesforce_and_diffusers_port_forms():
    pw, pl, rw, rl = _errs()
    beta = 5000.0
    loss, stats = L.diffusion_dpo_loss(pw, pl, rw, rl, beta)
    model_diff, ref_diff = pw - pl, rw - rl
    # Salesforce train.py: inside = -0.5·β·(model_diff − ref_diff), loss = −mean logσ(inside).
    inside = -0.5 * beta * (model_diff - ref_diff)
    torch.testing.assert_close(loss, -F.logsigmoid(inside).mean())
    torch.testing.assert_close(stats["implicit_acc"], (inside > 0).float().mean())
    # diffusers port: logits = ref_diff − model_diff, loss = −mean logσ(β'·logits) with β' = β/2.
    torch.testing.assert_close(loss, -F.logsigmoid((beta / 2) * (ref_diff - model_diff)).mean())


def test_dpo_default_beta_is_reference_5000():
    pw, pl, rw, rl = _errs()
    torch.testing.assert_close(
        L.diffusion_dpo_loss(pw, pl, rw, rl)[0], L.diffusion_dpo_loss(pw, pl, rw, rl, 5000)[0]
    )


def test_kto_policy_equals_reference_is_half_mean_weight():
    p, _, _, _ = _errs(b=10)
    desirable = torch.tensor([True, False] * 5)
    loss, stats = L.diffusion_kto_loss(p, p.clone(), desirable, desirable_weight=1.0, undesirable_weight=1.5)
    w = torch.where(desirable, 1.0, 1.5)
    torch.testing.assert_close(loss, 0.5 * w.mean())
    assert stats["reference_point"] == 0


def test_kto_matches_reference_formula():
    p, r, _, _ = _errs(b=12)
    y = torch.arange(12) % 3 == 0
    beta = 1000.0
    loss, stats = L.diffusion_kto_loss(p, r, y, beta, 2.0, 0.5)
    g = r - p  # diffusion-kto: policy_logps − ref_logps with logps = −mse
    kl = g.mean().clamp(min=0)
    h = torch.sigmoid((2 * y.float() - 1) * beta * (g - kl))
    expected = (torch.where(y, 2.0, 0.5) * (1 - h)).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(stats["reference_point"], kl)


def test_kto_reference_point_is_detached_and_zero_when_rewards_negative():
    p, r, _, _ = _errs(b=8, dtype=torch.float64)
    y = torch.arange(8) % 2 == 0
    # Policy better than reference on average → Q > 0; Q must not carry gradient.
    p1 = (r - 1e-4).clone().requires_grad_(True)
    loss, stats = L.diffusion_kto_loss(p1, r, y)
    assert stats["reference_point"] > 0
    (grad,) = torch.autograd.grad(loss, p1)
    p2 = p1.detach().clone().requires_grad_(True)
    loss_fixed, _ = L.diffusion_kto_loss(p2, r, y, reference_point=stats["reference_point"])
    (grad_fixed,) = torch.autograd.grad(loss_fixed, p2)
    torch.testing.assert_close(grad, grad_fixed)
    # Every reward negative (policy worse everywhere) → Q = max(0, mean) = 0.
    _, stats_neg = L.diffusion_kto_loss(r + 1e-3, r, y)
    assert stats_neg["reference_point"] == 0


def test_lift_rewards():
    good = dict.fromkeys(DIMENSIONS, "Good")
    bad = dict.fromkeys(DIMENSIONS, "Bad")
    mixed = dict(zip(DIMENSIONS, ("Good", "Normal", "Bad"), strict=True))
    assert L.lift_reward(good) == pytest.approx(0.90)
    assert L.lift_reward(bad) == pytest.approx(0.05)
    assert round(L.lift_reward(mixed), 2) == 0.38
    assert L.passes_rejection_sampling(good) and not L.passes_rejection_sampling(mixed)
    with pytest.raises(ValueError, match="dimensions"):
        L.lift_reward({"semantic_consistency": "Good"})
    with pytest.raises(ValueError, match="unknown verdicts"):
        L.lift_reward(dict.fromkeys(DIMENSIONS, "Great"))


def test_reward_weighted_and_nll_regularisers():
    p = torch.tensor([0.1, 0.3])
    loss, _ = L.reward_weighted_loss(p, torch.tensor([0.9, 0.05]))
    torch.testing.assert_close(loss, (0.9 * 0.1 + 0.05 * 0.3) / 2 * torch.ones(()))
    total, stats = L.nll_regularisers(torch.tensor(1.0), p, torch.tensor([0.5]), 0.2, 0.1)
    torch.testing.assert_close(total, torch.tensor(1.0 + 0.2 * 0.2 + 0.1 * 0.5))
    assert set(stats) == {"nll_preferred", "nll_real"}


def test_preferred_nll_as_a_share_of_the_global_mean():
    # 3 desirable of 4 samples in 2 micro-batches: each micro-batch divides its sum by 1.5, so the
    # mean of the micro-batch terms is the mean over the 3 desirable errors.
    desirable = torch.tensor([True, True, False, True])
    per_micro = L.kto_desirable_per_micro_batch(desirable, micro_batches=2)
    assert float(per_micro) == 1.5
    err = torch.tensor([0.1, 0.2, 0.6])
    terms = [
        L.nll_regularisers(torch.tensor(0.0), e, None, 1.0, 0.0, per_micro)[0] for e in (err[:2], err[2:])
    ]
    torch.testing.assert_close(sum(terms) / 2, err.mean())
    assert float(L.kto_desirable_per_micro_batch(torch.zeros(4, dtype=torch.bool), 2)) == 0
    with pytest.raises(ValueError, match="preferred_divisor"):
        L.nll_regularisers(torch.tensor(0.0), err, None, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="micro_batches"):
        L.kto_desirable_per_micro_batch(desirable, 0)


def test_v_prediction_mse_equals_cogvideox_weighted_x0_loss():
    from diffusers import CogVideoXDDIMScheduler

    abar = CogVideoXDDIMScheduler(rescale_betas_zero_snr=True, prediction_type="v_prediction").alphas_cumprod
    param = DDPMParametrisation(abar.double(), "v_prediction")
    g = torch.Generator().manual_seed(0)
    x0, noise = (
        torch.randn(6, 2, 4, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(6, 2, 4, 4, 4, generator=g, dtype=torch.float64),
    )
    t = torch.tensor([0, 1, 250, 500, 900, 999])
    x_t, v = param.noisy_and_target(x0, noise, t)
    v_pred = v + 0.3 * torch.randn_like(v)
    torch.testing.assert_close(
        L.per_sample_mse(v_pred, v), cogvideox_x0_error(v_pred, x0, x_t, t, abar.double())
    )


def test_flow_matching_interpolates_and_targets_velocity():
    x0, noise = torch.randn(3, 4, 2, 4, 4), torch.randn(3, 4, 2, 4, 4)
    t = torch.tensor([0.0, 500.0, 1000.0])
    x_t, target = FlowMatchingParametrisation().noisy_and_target(x0, noise, t)
    torch.testing.assert_close(x_t[0], x0[0])
    torch.testing.assert_close(x_t[1], 0.5 * x0[1] + 0.5 * noise[1])
    torch.testing.assert_close(x_t[2], noise[2])
    torch.testing.assert_close(target, noise - x0)


def test_gradients_pass_gradcheck_in_float64():
    pw, pl, rw, rl = (e.requires_grad_(True) for e in _errs(b=4, dtype=torch.float64))
    y = torch.tensor([True, False, True, False])
    w = torch.tensor([0.9, 0.05, 0.2, 0.4], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: L.diffusion_dpo_loss(a, b, rw.detach(), rl.detach())[0], (pw, pl)
    )
    assert torch.autograd.gradcheck(lambda a: L.diffusion_kto_loss(a, rw.detach(), y)[0], (pw,))
    assert torch.autograd.gradcheck(lambda a: L.reward_weighted_loss(a, w)[0], (pw,))
    pred = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: L.per_sample_mse(a, torch.zeros(2, 3, 4, dtype=torch.float64)), (pred,)
    )


@pytest.mark.parametrize("beta", [0.0, -1.0])
def test_non_positive_beta_is_refused(beta):
    pw, pl, rw, rl = _errs()
    with pytest.raises(ValueError, match="beta"):
        L.diffusion_dpo_loss(pw, pl, rw, rl, beta)
    with pytest.raises(ValueError, match="beta"):
        L.diffusion_kto_loss(pw, rw, pw > 0, beta)


def test_negative_lambda_and_shape_mismatch_are_refused():
    pw, pl, rw, rl = _errs()
    with pytest.raises(ValueError, match="NLL weights"):
        L.nll_regularisers(torch.tensor(0.0), pw, None, lambda_preferred=-0.1)
    with pytest.raises(ValueError, match="one shape"):
        L.diffusion_dpo_loss(pw, pl[:3], rw, rl)
    with pytest.raises(ValueError, match="shapes differ"):
        L.per_sample_mse(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=">= 0"):
        L.reward_weighted_loss(pw, -torch.ones_like(pw))
