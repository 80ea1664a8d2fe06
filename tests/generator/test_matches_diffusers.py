"""Invariant: for one candidate, our loop gives the latents diffusers' own pipeline gives."""

import pytest
import torch

from ipo_ray.generator.tiny import TEXT_LEN, build_tiny_cogvideox


def test_one_candidate_matches_the_diffusers_pipeline(generator) -> None:
    _assert_matches_pipeline(generator)


@pytest.mark.parametrize("height, width", [(32, 48), (48, 32)])
def test_rotary_cogvideox_matches_the_diffusers_pipeline(make_generator, tmp_path, height, width) -> None:
    # CogVideoX-5B's layout: 3D RoPE, built by the pipeline's own helper inside our loop. 32×48 px is the
    # model's native 2×3 token grid; 48×32 (3×2) is placed by the pipeline's resize-and-crop.
    build_tiny_cogvideox(rotary=True).save_pretrained(tmp_path / "rotary")
    generator = make_generator("cogvideox", tmp_path / "rotary", height=height, width=width)
    _assert_matches_pipeline(generator)


def _assert_matches_pipeline(generator) -> None:
    prompt, seed = "A small red circle glides slowly to the left.", 1234
    ours = generator.denoise(generator.encode_prompt(prompt), [seed])
    theirs = generator.pipe(
        prompt=prompt,
        height=generator.height,
        width=generator.width,
        num_frames=generator.num_frames,
        num_inference_steps=generator.num_inference_steps,
        guidance_scale=generator.guidance_scale,
        generator=torch.Generator("cpu").manual_seed(seed),
        max_sequence_length=TEXT_LEN,
        output_type="latent",
    ).frames
    # Wan's pipeline runs the guided and unguided passes separately, we batch them: float reordering only.
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
