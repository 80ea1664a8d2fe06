"""What every text-to-video backend offers, and the record of one generated candidate.

A backend (`CogVideoXGenerator`, `WanGenerator`) is a plain object holding a loaded diffusers model.
It exposes four tensor-level operations (`encode_prompt`, `denoise`, `decode`, `encode_video`) and
`sample`, which runs them for K candidates per prompt and writes files (`ipo_ray.generator.files`).
Ray wrappers only place and call these objects. A backend may also offer batched forms of the two
encoders (`encode_prompts`, `encode_videos`); `encode_prompts` and `encode_videos` below use them
where present and fall back to one call per item otherwise.

Seeds: each candidate has its own 63-bit seed and its own CPU `torch.Generator`, so a candidate is
reproducible from its seed alone, whatever else shared its batch. `candidate_seeds` derives the K
seeds of a prompt from one base seed; candidate k's seed does not depend on K.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ipo_ray.data import columns as col


class GeneratorError(ValueError):
    """A generator cannot be built or called as asked; the message says what to change."""


@dataclass(frozen=True)
class Candidate:
    """One generated video and what training and judging need of it.

    Paths are relative to the output directory given to `sample` (the candidates stage directory),
    so a run directory can be moved.

    Attributes:
        candidate_id: ``<prompt_id>_s<seed>``; unique as long as prompt ids are.
        prompt_id: Id of the prompt it was generated for.
        prompt: The prompt text.
        seed: The candidate's own seed (see `candidate_seeds`).
        generator_version: The generator's version string.
        latent_path: safetensors file of the final clean latents (`files.load_latents`).
        video_path: The decoded video as mp4.
        prompt_embeds_path: safetensors file of the prompt's text embeddings, shared by its K candidates.
    """

    candidate_id: str
    prompt_id: str
    prompt: str
    seed: int
    generator_version: str
    latent_path: str
    video_path: str
    prompt_embeds_path: str

    def table_row(self, round_index: int) -> dict[str, Any]:
        """The candidates-table row of this candidate (`ipo_ray.data.make_table(rows, "candidates")`)."""
        return {
            col.CANDIDATE_ID: self.candidate_id,
            col.PROMPT_ID: self.prompt_id,
            col.SEED: self.seed,
            col.GENERATOR_VERSION: self.generator_version,
            col.LATENT_PATH: self.latent_path,
            col.VIDEO_PATH: self.video_path,
            col.ROUND: round_index,
        }


class VideoGenerator(Protocol):
    """The interface every backend implements (structural: no base class to inherit)."""

    version: str
    fps: float
    height: int
    width: int
    num_frames: int

    def encode_prompt(self, text: str) -> torch.Tensor:
        """Text embeddings of one prompt, shape (L, D)."""
        ...

    def denoise(self, prompt_embeds: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Samples clean latents for len(seeds) candidates of one prompt in one transformer batch.

        Args:
            prompt_embeds: (L, D) embeddings from `encode_prompt`.
            seeds: One seed per candidate.

        Returns:
            Latents of shape (K, *latent_shape) in the layout the transformer takes.
        """
        ...

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Decodes latents of shape (B, *latent_shape) to uint8 frames of shape (B, T, H, W, 3)."""
        ...

    def encode_video(self, frames: np.ndarray) -> torch.Tensor:
        """Encodes uint8 frames (T, H, W, 3) to latents of shape latent_shape (the VAE posterior mean)."""
        ...

    def sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        num_candidates: int,
        out_dir: str | Path,
        prompt_ids: Sequence[str] | None = None,
    ) -> list[Candidate]:
        """K candidates per prompt, written under `out_dir`; see `files.sample_to_files`."""
        ...


def encode_prompts(generator: VideoGenerator, texts: Sequence[str]) -> torch.Tensor:
    """Text embeddings of B prompts, shape (B, L, D): one text-encoder batch where the backend offers one.

    Every backend pads each prompt to its fixed ``max_sequence_length`` whatever the batch holds, so a
    row equals that prompt's `encode_prompt` (up to float rounding of batched kernels).
    """
    batched = getattr(generator, "encode_prompts", None)
    if batched is not None:
        return batched(list(texts))
    return torch.stack([generator.encode_prompt(text) for text in texts])


def encode_videos(generator: VideoGenerator, clips: Sequence[np.ndarray]) -> torch.Tensor:
    """Latents of B clips, each uint8 frames (T, H, W, 3) of one shape, as (B, *latent_shape).

    One VAE batch where the backend offers `encode_videos`; one `encode_video` per clip otherwise.
    """
    batched = getattr(generator, "encode_videos", None)
    if batched is not None:
        return batched(list(clips))
    return torch.stack([generator.encode_video(frames) for frames in clips])


def candidate_seeds(base_seed: int, num_candidates: int) -> list[int]:
    """The seeds of a prompt's candidates, derived from the prompt's base seed.

    Hashing (numpy `SeedSequence`) rather than ``base + k`` keeps candidates of different prompts
    apart even when base seeds are consecutive. Candidate k's seed depends only on (base_seed, k).

    Args:
        base_seed: The prompt's seed, ≥ 0.
        num_candidates: K, ≥ 1.

    Returns:
        K distinct seeds in [0, 2**63) (they fit the candidates table's int64 column).
    """
    if base_seed < 0:
        raise GeneratorError(f"seeds must be ≥ 0, got {base_seed}")
    check_num_candidates(num_candidates)
    seeds = [
        int(np.random.SeedSequence([base_seed, k]).generate_state(1, np.uint64)[0] >> 1)
        for k in range(num_candidates)
    ]
    if len(set(seeds)) != len(seeds):  # 2**-60-ish odds; fail rather than silently duplicate a candidate
        raise GeneratorError(
            f"seed collision among the candidates of base seed {base_seed}; use another base seed"
        )
    return seeds


def check_num_candidates(num_candidates: int) -> None:
    """Raises `GeneratorError` unless K is an int ≥ 1."""
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
        raise GeneratorError(f"num_candidates (K) must be an integer ≥ 1, got {num_candidates!r}")


def cpu_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per seed: noise drawn on the CPU is the same on every device."""
    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]


def video_to_uint8(video: torch.Tensor) -> np.ndarray:
    """Converts a VAE output (B, 3, T, H, W) in [-1, 1] to uint8 frames (B, T, H, W, 3)."""
    video = (video.float() / 2 + 0.5).clamp(0, 1)
    return (video * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()


def uint8_to_video(frames: np.ndarray) -> torch.Tensor:
    """Converts uint8 frames (T, H, W, 3) to a VAE input (1, 3, T, H, W) in [-1, 1], float32."""
    if (
        not isinstance(frames, np.ndarray)
        or frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[-1] != 3
    ):
        raise GeneratorError(
            f"frames must be a uint8 array of shape (T, H, W, 3), got {type(frames).__name__} "
            f"{getattr(frames, 'dtype', '')} {getattr(frames, 'shape', '')}"
        )
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).unsqueeze(0)
    return video.float() / 127.5 - 1.0


def uint8_to_videos(clips: Sequence[np.ndarray]) -> torch.Tensor:
    """Converts B ≥ 1 clips of uint8 frames (T, H, W, 3), all of one shape, to a VAE input (B, 3, T, H, W)."""
    if not clips:
        raise GeneratorError("no clips to encode")
    shapes = {getattr(frames, "shape", None) for frames in clips}
    if len(shapes) > 1:
        raise GeneratorError(f"clips encoded in one batch must share a shape, got {sorted(map(str, shapes))}")
    return torch.cat([uint8_to_video(frames) for frames in clips])
