"""The plain-torch alignment step on tiny CogVideoX and Wan transformers (fp32, CPU)."""

import math

import pytest
import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer

from ipo_ray.align import losses as L
from ipo_ray.align.batches import NoiseDraw, PairBatch, SampleBatch
from ipo_ray.align.models import (
    REFERENCES,
    AdapterDisabledReference,
    cogvideox_denoiser,
    enable_gradient_checkpointing,
    wan_denoiser,
)
from ipo_ray.align.step import AlignmentStep, StepConfig

from .conftest import tiny_wan

LORA = LoraConfig(
    r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=True
)


def _pairs(
    n: int, shapes, g: torch.Generator, shift: float = 1.0, pattern: torch.Tensor | None = None
) -> PairBatch:
    """Planted preference: winners around +pattern, losers around −pattern, one shared prompt."""
    latent, text = shapes["cog_latent"], shapes["cog_text"]
    pattern = torch.ones(latent) if pattern is None else pattern
    winner = shift * pattern + 0.5 * torch.randn(n, *latent, generator=g)
    loser = -shift * pattern + 0.5 * torch.randn(n, *latent, generator=g)
    text_embeds = torch.randn(text, generator=torch.Generator().manual_seed(7)).expand(n, *text).contiguous()
    return PairBatch(winner, loser, text_embeds, ids=tuple(f"pair-{i}" for i in range(n)))


def _dpo_step(policy, alphas, reference: str = "frozen_copy", **cfg) -> AlignmentStep:
    return AlignmentStep(
        policy, cogvideox_denoiser(policy, alphas), REFERENCES[reference](policy), StepConfig("dpo", **cfg)
    )


def test_dpo_step_at_initialisation_is_ln2(cog, alphas_cumprod, shapes):
    step = _dpo_step(cog, alphas_cumprod, lambda_preferred=0.0)
    batch = _pairs(3, shapes, torch.Generator().manual_seed(0))
    loss, stats = step.loss(batch, step.draw_noise(batch, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(loss, torch.tensor(math.log(2)))
    assert stats["rewards/margin"] == 0 and "train/loss" in stats
    loss.backward()
    assert any(p.grad is not None for p in cog.parameters())


def test_winner_and_loser_share_noise_and_timestep(cog, alphas_cumprod, shapes):
    step = _dpo_step(cog, alphas_cumprod, lambda_preferred=0.0)
    b = _pairs(4, shapes, torch.Generator().manual_seed(0))
    # Identical winner and loser latents: with shared noise and timestep their errors are identical.
    same = PairBatch(b.winner, b.winner.clone(), b.text_embeds)
    inputs, inner = [], step.denoiser.forward
    step.denoiser = type(step.denoiser)(
        lambda m, x, t, e: inputs.append((x, t)) or inner(m, x, t, e), step.denoiser.parametrisation
    )
    _, stats = step.loss(same, step.draw_noise(same, torch.Generator().manual_seed(1)))
    _, (x_in, t_in) = inputs  # reference forward, then policy forward
    torch.testing.assert_close(x_in[:4], x_in[4:])
    torch.testing.assert_close(t_in[:4], t_in[4:])
    assert stats["rewards/margin"] == 0


def test_lora_reference_is_the_policy_with_adapters_disabled(make_cogvideox, alphas_cumprod, shapes):
    policy = make_cogvideox(0)
    base_params = sum(p.numel() for p in policy.parameters())
    policy.add_adapter(LORA)
    step = _dpo_step(policy, alphas_cumprod, reference="lora", lambda_preferred=0.0)
    assert isinstance(step.reference, AdapterDisabledReference) and step.reference.module is policy
    with step.reference() as ref_model:
        assert ref_model is policy
    # Memory: the only weights reachable from the step are the policy's (base + LoRA), no second copy.
    lora_params = sum(p.numel() for n, p in policy.named_parameters() if "lora" in n)
    assert sum(p.numel() for p in policy.parameters()) == base_params + lora_params
    assert lora_params < 0.5 * base_params
    batch = _pairs(2, shapes, torch.Generator().manual_seed(0))
    draw = step.draw_noise(batch, torch.Generator().manual_seed(1))
    # LoRA B starts at zero: policy = reference → ln 2; after perturbing B it differs, and the
    # reference forward still equals the base model (adapters off) while the adapters come back on.
    torch.testing.assert_close(step.loss(batch, draw)[0], torch.tensor(math.log(2)))
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    loss, stats = step.loss(batch, draw)
    assert abs(loss.item() - math.log(2)) > 1e-3
    base = make_cogvideox(0)
    frozen = _dpo_step(base, alphas_cumprod, lambda_preferred=0.0)
    _, base_stats = frozen.loss(batch, draw)
    torch.testing.assert_close(stats["train/ref_err"], base_stats["train/policy_err"])
    assert not any(m.disable_adapters for m in policy.modules() if isinstance(m, BaseTunerLayer))


def test_lora_reference_refuses_a_policy_without_adapters(cog):
    with pytest.raises(ValueError, match="add_adapter"):
        AdapterDisabledReference(cog)


def test_gradient_accumulation_matches_one_batch(make_cogvideox, alphas_cumprod, shapes):
    batch = _pairs(2, shapes, torch.Generator().manual_seed(0))
    grads = []
    for split in (False, True):
        policy = make_cogvideox(0)
        step = _dpo_step(policy, alphas_cumprod, beta=50.0)  # a small β keeps the loss off saturation
        draw = step.draw_noise(batch, torch.Generator().manual_seed(1))
        if split:  # 1 pair × 2 accumulation steps, each loss scaled by 1/2
            for i in range(2):
                part = PairBatch(
                    batch.winner[i : i + 1], batch.loser[i : i + 1], batch.text_embeds[i : i + 1]
                )
                sub = NoiseDraw(draw.noise[i : i + 1], draw.timesteps[i : i + 1])
                (step.loss(part, sub)[0] / 2).backward()
        else:
            step.loss(batch, draw)[0].backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_planted_preference_raises_held_out_implicit_accuracy(cog, alphas_cumprod, shapes):
    torch.manual_seed(0)
    step = _dpo_step(cog, alphas_cumprod, lambda_preferred=0.0)
    opt = torch.optim.AdamW(cog.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    pattern = torch.randn(shapes["cog_latent"], generator=torch.Generator().manual_seed(3))
    for i in range(150):
        batch = _pairs(4, shapes, g, pattern=pattern)
        loss, _ = step.loss(batch, step.draw_noise(batch, g), step=i)
        opt.zero_grad()
        loss.backward()
        opt.step()
    held_out = _pairs(32, shapes, torch.Generator().manual_seed(99), pattern=pattern)
    g_eval = torch.Generator().manual_seed(5)
    with torch.no_grad():
        accs = [
            step.loss(held_out, step.draw_noise(held_out, g_eval))[1]["rewards/implicit_acc"]
            for _ in range(3)
        ]
    assert torch.stack(accs).mean() > 0.75


def test_kto_step_on_wan_at_initialisation_is_half_mean_weight(wan, shapes):
    step = AlignmentStep(
        wan,
        wan_denoiser(wan),
        REFERENCES["lora"](_with_lora(wan)),
        StepConfig("kto", kto_undesirable_weight=2.0),
    )
    g = torch.Generator().manual_seed(0)
    n = 4
    batch = SampleBatch(
        torch.randn(n, *shapes["wan_latent"], generator=g),
        torch.randn(n, *shapes["wan_text"], generator=g),
        desirable=torch.tensor([True, False, True, False]),
        real=torch.randn(2, *shapes["wan_latent"], generator=g),
        real_text_embeds=torch.randn(2, *shapes["wan_text"], generator=g),
    )
    cfg0 = StepConfig("kto", kto_undesirable_weight=2.0, lambda_preferred=0.0, lambda_real=0.0)
    step0 = AlignmentStep(wan, step.denoiser, step.reference, cfg0)
    draw = step.draw_noise(batch, g)
    loss0, stats0 = step0.loss(batch, draw)
    torch.testing.assert_close(loss0, torch.tensor(0.5 * 1.5))
    assert stats0["kto/reference_point"] == 0
    loss, stats = step.loss(batch, draw)
    expected = loss0 + 0.2 * stats["train/nll_preferred"] + 0.1 * stats["train/nll_real"]
    torch.testing.assert_close(loss, expected)


def _with_lora(model):
    model.add_adapter(LORA)
    return model


def test_one_policy_forward_and_one_reference_forward_per_step(cog, alphas_cumprod, shapes):
    step = _dpo_step(cog, alphas_cumprod)
    calls = []
    inner = step.denoiser.forward
    step.denoiser = type(step.denoiser)(
        lambda m, x, t, e: calls.append(len(x)) or inner(m, x, t, e), step.denoiser.parametrisation
    )
    b = _pairs(3, shapes, torch.Generator().manual_seed(0))
    real = PairBatch(
        b.winner, b.loser, b.text_embeds, real=b.winner[:2].clone(), real_text_embeds=b.text_embeds[:2]
    )
    step.loss(real, step.draw_noise(real, torch.Generator().manual_seed(1)))
    assert calls == [3 + 3, 3 + 3 + 2]  # reference: the pairs; policy: winners + losers + real videos


def test_rwl_and_rs_need_no_reference(cog, alphas_cumprod, shapes):
    den = cogvideox_denoiser(cog, alphas_cumprod)
    g = torch.Generator().manual_seed(0)
    batch = SampleBatch(
        torch.randn(2, *shapes["cog_latent"], generator=g),
        torch.randn(2, *shapes["cog_text"], generator=g),
        weights=torch.tensor([0.9, 0.05]),
    )
    for objective in ("rwl", "rs"):
        step = AlignmentStep(cog, den, None, StepConfig(objective))
        loss, stats = step.loss(batch, step.draw_noise(batch, g))
        assert torch.isfinite(loss) and "train/ref_err" not in stats


def test_nan_loss_names_step_and_batch(cog, alphas_cumprod, shapes):
    step = _dpo_step(cog, alphas_cumprod)
    with torch.no_grad():
        next(cog.parameters()).fill_(float("nan"))
    batch = _pairs(2, shapes, torch.Generator().manual_seed(0))
    with pytest.raises(FloatingPointError, match=r"step 7.*pair-0"):
        step.loss(batch, step.draw_noise(batch), step=7)


def test_bad_input_is_refused(cog, alphas_cumprod, shapes):
    with pytest.raises(ValueError, match="beta"):
        StepConfig("dpo", beta=0.0)
    with pytest.raises(ValueError, match="lambda_real"):
        StepConfig("dpo", lambda_real=-0.1)
    with pytest.raises(ValueError, match="objective"):
        StepConfig("ppo")
    with pytest.raises(ValueError, match="differ in shape"):
        PairBatch(torch.zeros(1, 2, 4, 8, 8), torch.zeros(1, 3, 4, 8, 8), torch.zeros(1, 8, 8), ids=("p",))
    with pytest.raises(ValueError, match="needs a reference"):
        AlignmentStep(cog, cogvideox_denoiser(cog, alphas_cumprod), None, StepConfig("dpo"))


def test_kto_with_a_global_reference_point_reuses_the_reference_errors(
    make_cogvideox, alphas_cumprod, shapes
):
    policy, reference = make_cogvideox(0), make_cogvideox(1)
    step = AlignmentStep(
        policy,
        cogvideox_denoiser(policy, alphas_cumprod),
        REFERENCES["frozen_copy"](reference),
        StepConfig("kto", beta=50.0),
    )
    g = torch.Generator().manual_seed(0)
    batch = SampleBatch(
        torch.randn(4, *shapes["cog_latent"], generator=g),
        torch.randn(4, *shapes["cog_text"], generator=g),
        desirable=torch.tensor([True, False, False, True]),
        ids=("a", "b", "c", "d"),
    )
    draw = step.draw_noise_per_sample(batch, [11, 12, 13, 14])
    # a sample's draw depends on its seed only, not on its batch
    single = SampleBatch(batch.latents[2:3], batch.text_embeds[2:3], desirable=batch.desirable[2:3])
    torch.testing.assert_close(step.draw_noise_per_sample(single, [13]).noise, draw.noise[2:3])
    rewards, ref_err = step.kto_rewards(batch, draw)
    q = torch.tensor(0.25)
    full, full_stats = step.loss(batch, draw, reference_point=q)
    reused, stats = step.loss(batch, draw, reference_point=q, ref_err=ref_err)
    torch.testing.assert_close(reused, full)
    assert stats["kto/reference_point"] == 0.25 == full_stats["kto/reference_point"]
    # rewards = ref_err − policy_err, the policy errors being those the loss saw
    torch.testing.assert_close((ref_err - rewards).mean(), stats["train/policy_err"])


def test_kto_nll_term_accumulated_over_uneven_micro_batches_is_the_global_mean(
    make_cogvideox, alphas_cumprod, shapes
):
    """Micro-batches with 2 and 1 desirable samples: accumulated gradient = one big batch's.

    A per-micro-batch mean of λ1 would weight the lone desirable sample of the second micro-batch twice
    as much as each of the first's ((e0 + e1)/4 + e2/2 instead of (e0 + e1 + e2)/3); the check below
    that this weighting moves the gradient keeps the test able to fail.
    """
    g = torch.Generator().manual_seed(0)
    batch = SampleBatch(
        torch.randn(4, *shapes["cog_latent"], generator=g),
        torch.randn(4, *shapes["cog_text"], generator=g),
        desirable=torch.tensor([True, True, True, False]),
        ids=("a", "b", "c", "d"),
    )
    halves = [
        SampleBatch(batch.latents[s], batch.text_embeds[s], desirable=batch.desirable[s], ids=batch.ids[s])
        for s in (slice(0, 2), slice(2, 4))
    ]
    # β small (off saturation) and λ1 large, so the NLL term carries much of the gradient.
    cfg = StepConfig("kto", beta=50.0, lambda_preferred=1.0, lambda_real=0.0)

    def grad(split: str) -> torch.Tensor:
        policy = make_cogvideox(0)
        step = AlignmentStep(
            policy,
            cogvideox_denoiser(policy, alphas_cumprod),
            REFERENCES["frozen_copy"](make_cogvideox(1)),
            cfg,
        )
        if split == "none":
            step.loss(batch, step.draw_noise_per_sample(batch, [11, 12, 13, 14]))[0].backward()
        else:
            draws = [
                step.draw_noise_per_sample(h, s) for h, s in zip(halves, ([11, 12], [13, 14]), strict=True)
            ]
            rewards = torch.cat([step.kto_rewards(h, d)[0] for h, d in zip(halves, draws, strict=True)])
            q = L.kto_reference_point(rewards)
            per_micro = L.kto_desirable_per_micro_batch(batch.desirable, micro_batches=2)
            assert float(per_micro) == 1.5
            if split == "per_micro_batch_mean":  # the old λ1: each micro-batch's own mean
                per_micro = None
            for h, d in zip(halves, draws, strict=True):
                (step.loss(h, d, reference_point=q, desirable_per_micro_batch=per_micro)[0] / 2).backward()
        return torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])

    big, accumulated, old = grad("none"), grad("global"), grad("per_micro_batch_mean")
    torch.testing.assert_close(accumulated, big, rtol=1e-4, atol=1e-7)
    assert (old - big).norm() > 0.05 * big.norm()  # the old weighting is ~10% off here


def _grads_and_block_calls(policy, step: AlignmentStep, batch, draw) -> tuple[torch.Tensor, int]:
    """Flat gradient of one loss and how often the first transformer block started (forward + recompute).

    A pre-hook: checkpoint's recompute stops as soon as it has the saved tensors back, before the
    block returns, so a forward hook would not see it.
    """
    calls = []
    blocks = policy.transformer_blocks if hasattr(policy, "transformer_blocks") else policy.blocks  # Wan
    hook = blocks[0].register_forward_pre_hook(lambda *_: calls.append(1))
    step.loss(batch, draw)[0].backward()
    hook.remove()
    return torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None]), len(calls)


def test_gradient_checkpointing_recomputes_blocks_and_keeps_gradients(make_cogvideox, alphas_cumprod, shapes):
    batch = _pairs(2, shapes, torch.Generator().manual_seed(0))
    results = []
    for checkpointing in (False, True):
        policy = make_cogvideox(0)
        step = _dpo_step(policy, alphas_cumprod, beta=50.0)  # the frozen copy is taken before the switch
        if checkpointing:
            enable_gradient_checkpointing(policy)
        draw = step.draw_noise(batch, torch.Generator().manual_seed(1))
        results.append(_grads_and_block_calls(policy, step, batch, draw))
    (plain, plain_calls), (ckpt, ckpt_calls) = results
    torch.testing.assert_close(ckpt, plain, rtol=1e-5, atol=1e-8)
    # The reference is a copy: the policy's block runs once, and once more in backward when checkpointed.
    assert (plain_calls, ckpt_calls) == (1, 2)


def test_gradient_checkpointing_with_a_lora_reference_on_wan(shapes):
    g = torch.Generator().manual_seed(0)
    batch = SampleBatch(
        torch.randn(4, *shapes["wan_latent"], generator=g),
        torch.randn(4, *shapes["wan_text"], generator=g),
        desirable=torch.tensor([True, False, True, False]),
    )
    results = []
    for checkpointing in (False, True):
        policy = _with_lora(tiny_wan(0))
        if checkpointing:
            enable_gradient_checkpointing(policy)
        step = AlignmentStep(policy, wan_denoiser(policy), REFERENCES["lora"](policy), StepConfig("kto"))
        results.append(_grads_and_block_calls(policy, step, batch, step.draw_noise(batch, g.manual_seed(1))))
    (plain, plain_calls), (ckpt, ckpt_calls) = results
    torch.testing.assert_close(ckpt, plain, rtol=1e-5, atol=1e-8)
    # The reference is the policy with adapters off (no gradients: not checkpointed), then the policy.
    assert (plain_calls, ckpt_calls) == (2, 3)


def test_gradient_checkpointing_refuses_a_model_without_it():
    with pytest.raises(ValueError, match="align.gradient_checkpointing=false"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))
