"""CogVideoX-5B's 3D rotary embeddings in training: the ones the pipeline samples with, and a step runs."""

import types

import pytest
import torch
from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

from ipo_ray.align.batches import PairBatch
from ipo_ray.align.models import REFERENCES, cogvideox_denoiser, cogvideox_rotary_embedding
from ipo_ray.align.step import AlignmentStep, StepConfig

from .conftest import TINY_COGVIDEOX_5B

VAE_SCALE = 8  # CogVideoX's VAE: the pipeline turns latents into pixels with it, and back


def _tiny_5b(seed: int = 0) -> CogVideoXTransformer3DModel:
    torch.manual_seed(seed)
    return CogVideoXTransformer3DModel(**TINY_COGVIDEOX_5B)


def _pipeline_rotary(model: CogVideoXTransformer3DModel, frames: int, height: int, width: int):
    """The pipeline's own helper, on a stand-in holding what it reads (a transformer, the VAE factor)."""
    pipe = types.SimpleNamespace(transformer=model, vae_scale_factor_spatial=VAE_SCALE)
    return CogVideoXPipeline._prepare_rotary_positional_embeddings(
        pipe, height * VAE_SCALE, width * VAE_SCALE, frames, torch.device("cpu")
    )


@pytest.mark.parametrize(
    "frames, height, width",
    [(2, 4, 6), (2, 8, 8), (3, 12, 4), (1, 6, 10)],  # native 2×3 tokens, then resized and cropped grids
)
def test_rotary_embedding_is_the_pipelines(frames, height, width):
    model = _tiny_5b()
    ours = cogvideox_rotary_embedding(model.config, frames, height, width)
    theirs = _pipeline_rotary(model, frames, height, width)
    tokens = frames * (height // 2) * (width // 2)
    assert ours[0].shape == (tokens, TINY_COGVIDEOX_5B["attention_head_dim"])
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_forward_passes_the_pipelines_rotary_embedding(alphas_cumprod, shapes):
    model = _tiny_5b().eval()
    denoiser = cogvideox_denoiser(model, alphas_cumprod)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *shapes["cog_latent"], generator=g)  # (B, F, C, h, w): 8×8 latents, not native
    text = torch.randn(2, *shapes["cog_text"], generator=g)
    t = torch.tensor([10, 700])
    frames, _, height, width = shapes["cog_latent"]

    def call(rotary):
        return model(
            hidden_states=x,
            encoder_hidden_states=text,
            timestep=t,
            image_rotary_emb=rotary,
            return_dict=False,
        )[0]

    with torch.no_grad():
        ours = denoiser.forward(model, x, t, text)
        torch.testing.assert_close(ours, call(_pipeline_rotary(model, frames, height, width)), rtol=0, atol=0)
        assert not torch.allclose(ours, call(None))  # the positions matter: a forward without them differs


def test_one_alignment_step_on_a_5b_shaped_model(alphas_cumprod, shapes):
    policy = _tiny_5b()
    step = AlignmentStep(
        policy,
        cogvideox_denoiser(policy, alphas_cumprod),
        REFERENCES["frozen_copy"](_tiny_5b(1)),
        StepConfig("dpo", beta=50.0),
    )
    g = torch.Generator().manual_seed(0)
    batch = PairBatch(
        torch.randn(2, *shapes["cog_latent"], generator=g),
        torch.randn(2, *shapes["cog_latent"], generator=g),
        torch.randn(2, *shapes["cog_text"], generator=g),
    )
    loss, stats = step.loss(batch, step.draw_noise(batch, torch.Generator().manual_seed(1)))
    assert torch.isfinite(loss) and stats["rewards/margin"] != 0  # other reference weights: a margin
    loss.backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.norm()) for gr in grads) > 0


def test_cogvideox_1_5_is_refused(alphas_cumprod):
    model = CogVideoXTransformer3DModel(**TINY_COGVIDEOX_5B, patch_size_t=2)
    with pytest.raises(ValueError, match="1.5"):
        cogvideox_denoiser(model, alphas_cumprod)
