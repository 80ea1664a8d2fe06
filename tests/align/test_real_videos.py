"""The λ2 term (IPO Eq. 9, LiFT Eq. 3): real videos in the step, their per-sample noise and their draw."""

from pathlib import Path

import pyarrow as pa
import pytest
import torch

from ipo_ray.align import losses as L
from ipo_ray.align.batches import PairBatch, SampleBatch
from ipo_ray.align.models import REFERENCES, cogvideox_denoiser
from ipo_ray.align.preflight import PreflightError, check_real_table
from ipo_ray.align.real import RealClips, real_draw
from ipo_ray.align.step import AlignmentStep, StepConfig
from ipo_ray.data import columns as col
from ipo_ray.data import make_table


def _batch(shapes, n: int = 2, real: int = 3, seed: int = 0) -> PairBatch:
    g = torch.Generator().manual_seed(seed)
    latent, text = shapes["cog_latent"], shapes["cog_text"]
    return PairBatch(
        torch.randn(n, *latent, generator=g),
        torch.randn(n, *latent, generator=g),
        torch.randn(n, *text, generator=g),
        ids=tuple(f"p{i}" for i in range(n)),
        real=torch.randn(real, *latent, generator=g) if real else None,
        real_text_embeds=torch.randn(real, *text, generator=g) if real else None,
    )


def _step(policy, alphas, lambda_real: float) -> AlignmentStep:
    cfg = StepConfig("dpo", lambda_preferred=0.2, lambda_real=lambda_real)
    return AlignmentStep(policy, cogvideox_denoiser(policy, alphas), REFERENCES["frozen_copy"](policy), cfg)


def test_lambda2_adds_exactly_lambda2_times_the_mean_real_error(cog, alphas_cumprod, shapes):
    batch = _batch(shapes)
    with_real, without = _step(cog, alphas_cumprod, 0.5), _step(cog, alphas_cumprod, 0.0)
    draw = with_real.draw_noise_per_sample(batch, [1, 2], [3, 4, 5])
    loss, stats = with_real.loss(batch, draw)
    loss0, stats0 = without.loss(batch, draw)
    assert "train/nll_real" not in stats0  # λ2 = 0: no term and no stat

    # The real error, computed on its own: the policy on the real clips alone under the same draw.
    den = with_real.denoiser
    x_t, target = den.parametrisation.noisy_and_target(batch.real, draw.real_noise, draw.real_timesteps)
    with torch.no_grad():
        real_err = L.per_sample_mse(
            den.forward(cog, x_t, draw.real_timesteps, batch.real_text_embeds), target
        )
    torch.testing.assert_close(stats["train/nll_real"], real_err.mean(), rtol=1e-5, atol=0)
    torch.testing.assert_close(loss - loss0, 0.5 * stats["train/nll_real"], rtol=1e-5, atol=1e-7)
    # The preference part is unchanged by the real videos riding in the same forward.
    for key in ("rewards/margin", "train/nll_preferred"):
        torch.testing.assert_close(stats[key], stats0[key], rtol=1e-5, atol=1e-7)


def test_gradient_flows_through_the_real_term(make_cogvideox, alphas_cumprod, shapes):
    batch = _batch(shapes)
    grads = {}
    for lam in (0.0, 1.0):
        policy = make_cogvideox(0)
        step = _step(policy, alphas_cumprod, lam)
        loss, _ = step.loss(batch, step.draw_noise_per_sample(batch, [1, 2], [3, 4, 5]))
        loss.backward()
        grads[lam] = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
    assert torch.isfinite(grads[1.0]).all()
    assert (grads[1.0] - grads[0.0]).abs().max() > 1e-6  # the real videos move the policy


def test_a_real_videos_noise_depends_on_its_seed_only(cog, alphas_cumprod, shapes):
    step = _step(cog, alphas_cumprod, 0.1)
    both = step.draw_noise_per_sample(_batch(shapes, real=2), [1, 2], [10, 11])
    first = step.draw_noise_per_sample(_batch(shapes, n=1, real=1), [1], [10])
    second = step.draw_noise_per_sample(_batch(shapes, n=1, real=1), [2], [11])
    torch.testing.assert_close(both.real_noise, torch.cat([first.real_noise, second.real_noise]))
    torch.testing.assert_close(both.real_timesteps, torch.cat([first.real_timesteps, second.real_timesteps]))
    torch.testing.assert_close(both.noise, torch.cat([first.noise, second.noise]))


def test_per_sample_draw_needs_one_seed_per_real_video(cog, alphas_cumprod, shapes):
    step = _step(cog, alphas_cumprod, 0.1)
    with pytest.raises(ValueError, match="one real seed per real video, got None for 3"):
        step.draw_noise_per_sample(_batch(shapes), [1, 2])
    with pytest.raises(ValueError, match="one real seed per real video, got 1 for 3"):
        step.draw_noise_per_sample(_batch(shapes), [1, 2], [3])
    with pytest.raises(ValueError, match="without real videos"):
        step.draw_noise_per_sample(_batch(shapes, real=0), [1, 2], [3])


def test_real_videos_ride_in_sample_batches_too(cog, alphas_cumprod, shapes):
    b = _batch(shapes)
    batch = SampleBatch(
        b.winner, b.text_embeds, weights=torch.ones(2), real=b.real, real_text_embeds=b.real_text_embeds
    )
    step = AlignmentStep(
        cog, cogvideox_denoiser(cog, alphas_cumprod), None, StepConfig("rwl", lambda_real=1.0)
    )
    loss, stats = step.loss(batch, step.draw_noise_per_sample(batch, [1, 2], [3, 4, 5]))
    # Weights 1: the reward-weighted loss is the mean preference error; λ2 = 1 adds the real one.
    torch.testing.assert_close(loss.detach(), stats["train/policy_err"] + stats["train/nll_real"])


def test_real_draw_is_a_function_of_seed_step_and_slot():
    indices, seeds = real_draw(0, step=3, slot=1, num_clips=10, batch_size=4)
    assert len(set(indices)) == 4 and all(0 <= i < 10 for i in indices)  # distinct clips
    assert len(set(seeds)) == 4
    assert real_draw(0, 3, 1, 10, 4) == (indices, seeds)
    assert real_draw(0, 3, 0, 10, 4) != (indices, seeds)  # another slot of the same step
    assert real_draw(0, 4, 1, 10, 4) != (indices, seeds)  # the next step
    with pytest.raises(ValueError, match=r"real batch size must be in \[1, 3\]"):
        real_draw(0, 0, 0, num_clips=3, batch_size=4)


def test_preflight_of_the_real_videos(tmp_path, shapes, real_clips):
    latent, text = shapes["cog_latent"], shapes["cog_text"]
    clips = real_clips(tmp_path, 3)
    rows = [
        # Paths relative to the table's folder, as the real stage writes them.
        {col.VIDEO_ID: i, col.VIDEO_PATH: f"{i}.mp4", col.CAPTION: "c", col.LATENT_PATH: Path(lp).name}
        | {col.PROMPT_EMBEDS_PATH: Path(ep).name}
        for i, lp, ep in zip(clips.ids, clips.latent_paths, clips.embeds_paths, strict=True)
    ]
    table = make_table(rows, "real_videos")
    checked = check_real_table(table, root=tmp_path, latent_shape=latent, text_shape=text, batch_size=2)
    assert checked[col.LATENT_PATH][0].as_py() == str(tmp_path / "real0.safetensors")  # absolute for workers
    assert RealClips.from_table(checked).load([2, 0])[0].shape == (2, *latent)

    def check(t, **changes):
        kwargs = dict(root=tmp_path, latent_shape=latent, text_shape=text, batch_size=2) | changes
        return check_real_table(t, **kwargs)

    with pytest.raises(PreflightError, match="fewer than align.real_batch_size=4"):
        check(table, batch_size=4)
    with pytest.raises(
        PreflightError, match=r"row 0 \(real0\), column 'latent_path'.*expected \(2, 4, 4, 4\)"
    ):
        check(table, latent_shape=(2, 4, 4, 4))
    with pytest.raises(PreflightError, match="column 'prompt_embeds_path'.* expected"):
        check(table, text_shape=(9, 8))
    (tmp_path / "real1.safetensors").unlink()
    with pytest.raises(
        PreflightError, match=r"row 1 \(real1\), column 'latent_path': file .*real1.safetensors is missing"
    ):
        check(table)
    index = table.schema.get_field_index(col.LATENT_PATH)
    unencoded = table.set_column(index, table.schema.field(index), pa.nulls(3, pa.string()))
    with pytest.raises(PreflightError, match="row 0 .*: empty; encode the clips first"):
        check(unencoded)
