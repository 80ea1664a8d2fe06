"""The world's generator as a backend: `WorldGenerator` samples clips from a shipped checkpoint.

Same contract as the diffusers backends (`ipo_ray.generator.types.VideoGenerator`): the K candidates
of a prompt in one batch, one seeded generator per candidate, files written by `sample_to_files`.
The architecture and checkpoint format live in `world_model.py`.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ipo_ray.generator.files import sample_to_files
from ipo_ray.generator.loading import check_sampling_args
from ipo_ray.generator.types import (
    Candidate,
    GeneratorError,
    cpu_generators,
    uint8_to_video,
    video_to_uint8,
)
from ipo_ray.generator.world_model import (
    DEFAULT_CHECKPOINT,
    WorldModel,
    load_world_model,
    make_scheduler,
)


@torch.no_grad()
def sample_clips(
    model: WorldModel,
    text_embeds: torch.Tensor,
    seeds: Sequence[int],
    shape: tuple[int, int, int, int],
    num_inference_steps: int,
    guidance_scale: float,
) -> torch.Tensor:
    """Euler sampling of the flow for a batch, each sample from its own seeded CPU noise.

    Args:
        model: The world model.
        text_embeds: (B, L, D) prompt embeddings, one row per sample.
        seeds: B seeds.
        shape: (3, F, H, W) of one sample.
        num_inference_steps: Euler steps.
        guidance_scale: Classifier-free guidance weight; 1 disables it. The unconditional input is
            the empty prompt's embedding, all zeros; conditional and unconditional run as one batch.

    Returns:
        Clean samples (B, 3, F, H, W), float32, in pixel units scaled to about [-1, 1].
    """
    if text_embeds.shape[0] != len(seeds):
        raise GeneratorError(f"need one seed per sample, got {len(seeds)} seeds for {text_embeds.shape[0]}")
    device = text_embeds.device
    latents = torch.cat(
        [torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in cpu_generators(seeds)]
    ).to(device)
    use_cfg = guidance_scale > 1.0
    cond = torch.cat([text_embeds, torch.zeros_like(text_embeds)]) if use_cfg else text_embeds
    scheduler = make_scheduler()
    scheduler.set_timesteps(num_inference_steps, device=device)
    for t in scheduler.timesteps:
        model_in = torch.cat([latents, latents]) if use_cfg else latents
        sigma = (t / 1000.0).expand(model_in.shape[0]).to(torch.float32)
        pred = model(model_in, sigma, cond).float()
        if use_cfg:
            pred_text, pred_uncond = pred.chunk(2)
            pred = pred_uncond + guidance_scale * (pred_text - pred_uncond)
        latents = scheduler.step(pred, t, latents, return_dict=False)[0]
    return latents


class WorldGenerator:
    """Samples world clips, K candidates of a prompt in one transformer batch.

    Resolution, frame count and fps come from the checkpoint's render settings: the model exists
    for one clip geometry.

    Args:
        model_path: A checkpoint folder (default: the shipped small model).
        version: Generator version recorded with every candidate; default
            ``world-<size>-<training steps>``.
        num_inference_steps: Euler steps.
        guidance_scale: Classifier-free guidance weight; 1 disables guidance.
        device: Torch device.

    Raises:
        GeneratorError: Missing folder, a folder of another model type, bad sampler arguments.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] = DEFAULT_CHECKPOINT,
        *,
        version: str | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 3.0,
        device: str | torch.device = "cpu",
    ) -> None:
        check_sampling_args(num_inference_steps, guidance_scale)
        self.model, self.settings, self.meta = load_world_model(model_path)
        self.device = torch.device(device)
        self.model.to(self.device).requires_grad_(False)
        steps = self.meta.get("training", {}).get("steps", 0)
        self.version = version or f"world-{self.meta['size']}-{steps}"
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = float(guidance_scale)
        self.fps = float(self.settings.fps)
        self.height, self.width, self.num_frames = (
            self.settings.height,
            self.settings.width,
            self.settings.frames,
        )
        self.latent_shape = (3, self.num_frames, self.height, self.width)

    def encode_prompt(self, text: str) -> torch.Tensor:
        """T5 embeddings of `text`, shape (L, D), zero beyond the prompt's tokens."""
        return self.encode_prompts([text])[0]

    @torch.no_grad()
    def encode_prompts(self, texts: Sequence[str]) -> torch.Tensor:
        """T5 embeddings of B prompts in one batch, shape (B, L, D).

        Each prompt is padded to the model's fixed text length under an attention mask and zeroed
        beyond its tokens, so its row is the same in any batch.
        """
        return self.model.encode_text(list(texts))

    @torch.no_grad()
    def denoise(self, prompt_embeds: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Samples clean pixel-space latents (K, 3, F, H, W) for K = len(seeds) candidates of one prompt."""
        embeds = prompt_embeds.to(self.device, torch.float32).unsqueeze(0).expand(len(seeds), -1, -1)
        return self.denoise_batch(embeds, seeds)

    @torch.no_grad()
    def denoise_batch(self, prompt_embeds: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Samples (B, 3, F, H, W) for a batch of (possibly different) prompts (B, L, D), one seed each."""
        return sample_clips(
            self.model,
            prompt_embeds.to(self.device, torch.float32),
            seeds,
            self.latent_shape,
            self.num_inference_steps,
            self.guidance_scale,
        )

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Pixel-space latents (B, 3, F, H, W) → uint8 frames (B, F, H, W, 3) (clipped to [-1, 1])."""
        return video_to_uint8(latents)

    def encode_video(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames (F, H, W, 3) of the model's geometry → latents (3, F, H, W) in [-1, 1]."""
        video = uint8_to_video(frames)[0]
        if tuple(video.shape) != self.latent_shape:
            raise GeneratorError(
                f"frames of shape {frames.shape} do not match the model's clips "
                f"({self.num_frames}, {self.height}, {self.width}, 3)"
            )
        return video

    def sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        num_candidates: int,
        out_dir: str | os.PathLike[str] | Path,
        prompt_ids: Sequence[str] | None = None,
    ) -> list[Candidate]:
        """K candidates per prompt written under `out_dir`; see `ipo_ray.generator.files.sample_to_files`."""
        return sample_to_files(self, prompts, seeds, num_candidates, out_dir, prompt_ids)
