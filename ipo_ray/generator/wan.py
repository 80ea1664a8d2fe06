"""Wan 2.1 (UMT5 text encoder, causal 3D VAE, flow-matching DiT) as a K-candidate sampler.

The loop follows `WanPipeline.__call__` (diffusers 0.42) for one transformer (Wan 2.1), with two
changes that do not alter the maths: the conditional and unconditional passes of classifier-free
guidance run as one batch of 2K (the pipeline runs two forwards of K), and the initial noise of each
candidate comes from its own seeded CPU generator. The flow-matching schedulers Wan ships with
(`UniPCMultistepScheduler` with ``flow_prediction``, or `FlowMatchEulerDiscreteScheduler`) are
deterministic given the initial noise.

Latents are stored as the transformer takes them: (C, F, h, w), normalised with the VAE's per-channel
``latents_mean``/``latents_std``.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel

from ipo_ray.generator.files import sample_to_files
from ipo_ray.generator.loading import (
    check_positive,
    check_resolution,
    check_sampling_args,
    component_config,
    resolve_pipeline_dir,
)
from ipo_ray.generator.types import (
    Candidate,
    GeneratorError,
    cpu_generators,
    uint8_to_videos,
    video_to_uint8,
)


class WanGenerator:
    """Samples Wan 2.1 videos, K candidates of a prompt in one transformer batch.

    Args:
        model_path: Local pipeline folder (``WanPipeline.save_pretrained`` layout) or a hub id.
        version: Generator version recorded with every candidate.
        height: Video height in pixels; a multiple of VAE factor × patch size (8 × 2 = 16).
        width: Video width in pixels; same rule.
        num_frames: Video length, 1 + 4·n (Wan 2.1: 81).
        num_inference_steps: Scheduler steps.
        guidance_scale: Classifier-free guidance weight; 1 disables guidance.
        fps: Frames per second written into the mp4s.
        max_sequence_length: Text tokens (the pipeline's default is 512).
        device: Torch device for every component.
        dtype: Transformer and text encoder dtype (the VAE stays float32); keep float32 on CPU.

    Raises:
        GeneratorError: Bad path, another model type, Wan 2.2's two-transformer layout, an unsupported
            scheduler, or a size the model cannot take; all found from configs before weights load.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        version: str,
        height: int,
        width: int,
        num_frames: int,
        num_inference_steps: int = 50,
        guidance_scale: float = 5.0,
        fps: float = 16.0,
        max_sequence_length: int = 512,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        path = resolve_pipeline_dir(model_path, "WanPipeline")
        if (path / "transformer_2").is_dir():
            raise GeneratorError(
                f"{path} is a two-transformer Wan 2.2 model; only Wan 2.1 (one transformer) is supported"
            )
        transformer_cfg = component_config(path, "transformer", WanTransformer3DModel)
        vae_cfg = component_config(path, "vae", AutoencoderKLWan)
        scheduler_cfg = component_config(path, "scheduler")
        _check_scheduler(path, scheduler_cfg)
        patch_t, patch_h, patch_w = transformer_cfg["patch_size"]
        spatial, temporal = int(vae_cfg["scale_factor_spatial"]), int(vae_cfg["scale_factor_temporal"])
        if patch_h != patch_w:
            raise GeneratorError(
                f"{path}: non-square patches {transformer_cfg['patch_size']} are not supported"
            )
        check_resolution(
            height,
            width,
            num_frames,
            spatial=spatial * patch_h,
            temporal=temporal,
            latent_frames_multiple=patch_t,
        )
        check_sampling_args(num_inference_steps, guidance_scale)
        check_positive("fps", fps)
        check_positive("max_sequence_length", max_sequence_length)

        self.version = version
        self.height, self.width, self.num_frames = height, width, num_frames
        self._pixels_per_token, self._temporal = spatial * patch_h, temporal
        self.fps = float(fps)
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = float(guidance_scale)
        self.max_sequence_length = max_sequence_length
        self.device = torch.device(device)
        self.dtype = dtype
        self.latent_shape = (
            transformer_cfg["in_channels"],
            (num_frames - 1) // temporal + 1,
            height // spatial,
            width // spatial,
        )
        self.pipe = WanPipeline.from_pretrained(str(path), dtype=dtype).to(self.device)
        self.pipe.vae.to(torch.float32)  # Wan's VAE decodes visibly better in float32 (diffusers' Wan docs)
        for module in (self.pipe.transformer, self.pipe.vae, self.pipe.text_encoder):
            module.eval().requires_grad_(False)
        z_dim = self.pipe.vae.config.z_dim
        self._latents_mean = (
            torch.tensor(self.pipe.vae.config.latents_mean).view(1, z_dim, 1, 1, 1).to(self.device)
        )
        self._latents_std = (
            torch.tensor(self.pipe.vae.config.latents_std).view(1, z_dim, 1, 1, 1).to(self.device)
        )
        self._negative_embeds: torch.Tensor | None = None

    def encode_prompt(self, text: str) -> torch.Tensor:
        """UMT5 embeddings of `text`, shape (L, D), zero beyond the prompt's tokens (as the pipeline does)."""
        return self.encode_prompts([text])[0]

    @torch.no_grad()
    def encode_prompts(self, texts: Sequence[str]) -> torch.Tensor:
        """UMT5 embeddings of B prompts in one batch, shape (B, L, D).

        Each prompt is padded to `max_sequence_length` under an attention mask and zeroed beyond its
        tokens, so its row is the same in any batch.
        """
        embeds, _ = self.pipe.encode_prompt(
            prompt=list(texts),
            do_classifier_free_guidance=False,
            num_videos_per_prompt=1,
            max_sequence_length=self.max_sequence_length,
            device=self.device,
            dtype=self.dtype,
        )
        return embeds

    @torch.no_grad()
    def denoise(self, prompt_embeds: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Samples clean latents (K, C, F, h, w), float32, for K = len(seeds) candidates of one prompt."""
        pipe, k = self.pipe, len(seeds)
        cond = prompt_embeds.to(self.device, self.dtype).unsqueeze(0).expand(k, -1, -1)
        use_cfg = self.guidance_scale > 1.0
        if use_cfg:
            if self._negative_embeds is None:  # the empty prompt, as the pipeline's default; encoded once
                self._negative_embeds = self.encode_prompt("")
            uncond = self._negative_embeds.to(self.device, self.dtype).unsqueeze(0).expand(k, -1, -1)
            cond = torch.cat([cond, uncond])
        pipe.scheduler.set_timesteps(self.num_inference_steps, device=self.device)
        pipe.scheduler.set_begin_index(0)
        latents = torch.cat(
            [
                torch.randn((1, *self.latent_shape), generator=g, dtype=torch.float32)
                for g in cpu_generators(seeds)
            ]
        ).to(self.device)
        for t in pipe.scheduler.timesteps:
            model_in = torch.cat([latents, latents]) if use_cfg else latents
            pred = pipe.transformer(
                hidden_states=model_in.to(self.dtype),
                timestep=t.expand(model_in.shape[0]),
                encoder_hidden_states=cond,
                return_dict=False,
            )[0].float()  # FlowMatchEuler returns latents in the prediction's dtype: keep them float32
            if use_cfg:
                pred_text, pred_uncond = pred.chunk(2)
                pred = pred_uncond + self.guidance_scale * (pred_text - pred_uncond)
            latents = pipe.scheduler.step(pred, t, latents, return_dict=False)[0]
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Decodes latents (B, C, F, h, w) to uint8 frames (B, num_frames, H, W, 3)."""
        vae = self.pipe.vae
        z = latents.to(self.device, torch.float32) * self._latents_std + self._latents_mean
        return video_to_uint8(vae.decode(z.to(vae.dtype), return_dict=False)[0])

    def encode_video(self, frames: np.ndarray) -> torch.Tensor:
        """Encodes uint8 frames (T, H, W, 3) to float32 normalised latents (C, F, h, w), the posterior mean.

        T must be 1 + 4·n and H, W multiples of 16 (any size the transformer could have sampled).
        """
        return self.encode_videos([frames])[0]

    @torch.no_grad()
    def encode_videos(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """Encodes B clips of uint8 frames (T, H, W, 3), all one shape, in one VAE batch: (B, C, F, h, w)."""
        vae = self.pipe.vae
        video = uint8_to_videos(clips)
        _, _, length, height, width = video.shape
        check_resolution(height, width, length, spatial=self._pixels_per_token, temporal=self._temporal)
        video = video.to(self.device, vae.dtype)
        z = vae.encode(video).latent_dist.mode().float()
        return (z - self._latents_mean) / self._latents_std

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


def _check_scheduler(path: Path, config: dict) -> None:
    name = config.get("_class_name")
    if name == "FlowMatchEulerDiscreteScheduler" and not config.get("stochastic_sampling", False):
        return
    if name == "UniPCMultistepScheduler" and config.get("prediction_type") == "flow_prediction":
        return
    raise GeneratorError(
        f"{path}: scheduler {name!r} is not a deterministic flow-matching scheduler; use "
        f"FlowMatchEulerDiscreteScheduler or UniPCMultistepScheduler(prediction_type='flow_prediction')"
    )
