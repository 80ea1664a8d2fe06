"""Real clips → latents and caption embeddings, encoded once, for the NLL-on-real-data regulariser.

IPO Eq. 7/9 and LiFT Eq. 3 add the diffusion loss on real videos to keep the policy close to real
data. Training reads their latents and caption embeddings, never the pixels or the text, so each clip
is encoded once with the backend's VAE, as the posterior mean (deterministic), and each caption once
with the backend's text encoder — the one that embeds the prompts of generated candidates, so real and
preference samples condition the transformer alike. Files, under the output directory:

    real_latents/<video_id>.safetensors          one per clip
    real_prompt_embeds/<caption id>.safetensors  one per distinct caption (`files.prompt_id_for`)

A later call finds the files and skips what is cached.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data.validation import make_table, validate_table
from ipo_ray.data.video import read_frames
from ipo_ray.generator.files import is_cached_prompt, prompt_id_for, save_latents, save_prompt_embeds
from ipo_ray.generator.types import GeneratorError, VideoGenerator, encode_prompts, encode_videos

REAL_LATENTS_DIR = "real_latents"
REAL_EMBEDS_DIR = "real_prompt_embeds"
# Captions are short and the text encoder is small next to the VAE, so 32 at a time costs little memory.
TEXT_BATCH_SIZE = 32
# A full-size clip (CogVideoX: 49 × 480 × 720) takes GBs of VAE activations: a small batch (not measured on
# a GPU yet; lower it if the encode runs out of memory).
CLIP_BATCH_SIZE = 4


def encode_real_videos(
    generator: VideoGenerator,
    videos: pa.Table,
    video_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    text_batch_size: int = TEXT_BATCH_SIZE,
    clip_batch_size: int = CLIP_BATCH_SIZE,
) -> pa.Table:
    """Encodes every clip and caption of a real-videos table that has no cached files yet, in batches.

    Each clip is read as `generator.num_frames` frames sampled uniformly over it (`read_frames`), so a
    clip of another length is resampled in time; its frame size must already be the generator's
    (resizing and cropping are a data-preparation choice, made before this step). Every clip then has
    the generator's shape, so clips are encoded `clip_batch_size` at a time (`types.encode_videos`),
    and the distinct uncached captions `text_batch_size` at a time (`types.encode_prompts`); a row's
    result does not depend on what shared its batch (beyond float rounding of batched kernels).

    Args:
        generator: The backend whose VAE and text encoder encode (any, e.g. `CogVideoXGenerator`).
        videos: A ``real_videos`` table; ``video_path`` is relative to `video_root`.
        video_root: Directory the video paths are relative to.
        out_dir: Directory the files go under; the paths in the result are relative to it.
        text_batch_size: Captions per text-encoder batch, ≥ 1.
        clip_batch_size: Clips per VAE batch, ≥ 1 (the frames of one batch are held in memory).

    Returns:
        The table with ``latent_path`` and ``prompt_embeds_path`` set on every row.

    Raises:
        TableValidationError: `videos` is not a valid real-videos table.
        GeneratorError: A batch size below 1; a clip's frame size differs from the generator's; a
            cached caption file holds another caption.
    """
    for name, size in (("text_batch_size", text_batch_size), ("clip_batch_size", clip_batch_size)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise GeneratorError(f"{name} must be an integer ≥ 1, got {size!r}")
    validate_table(videos, "real_videos")
    video_root, out_dir = Path(video_root), Path(out_dir)
    rows = videos.to_pylist()
    for row in rows:
        row[col.LATENT_PATH] = f"{REAL_LATENTS_DIR}/{row[col.VIDEO_ID]}.safetensors"
        row[col.PROMPT_EMBEDS_PATH] = f"{REAL_EMBEDS_DIR}/{prompt_id_for(row[col.CAPTION])}.safetensors"
    _embed_captions(generator, rows, out_dir, text_batch_size)
    _encode_clips(generator, rows, video_root, out_dir, clip_batch_size)
    return make_table(rows, "real_videos")


def _embed_captions(
    generator: VideoGenerator, rows: list[dict[str, Any]], out_dir: Path, batch_size: int
) -> None:
    """Writes the embeddings (L, D) of each distinct caption whose file is missing."""
    todo = {}  # embeddings path → caption, first appearance first; a dict dedupes repeated captions
    for row in rows:
        path = out_dir / row[col.PROMPT_EMBEDS_PATH]
        if path not in todo and not is_cached_prompt(path, row[col.CAPTION]):
            todo[path] = row[col.CAPTION]
    for batch in _chunks(list(todo.items()), batch_size):
        embeds = encode_prompts(generator, [caption for _, caption in batch])  # (B, L, D)
        for (path, caption), row_embeds in zip(batch, embeds, strict=True):
            save_prompt_embeds(path, row_embeds, prompt=caption, version=generator.version)


def _encode_clips(
    generator: VideoGenerator, rows: list[dict[str, Any]], video_root: Path, out_dir: Path, batch_size: int
) -> None:
    """Writes the latents (*latent_shape) of each clip whose file is missing."""
    todo = {out_dir / row[col.LATENT_PATH]: row[col.VIDEO_PATH] for row in rows}
    todo = {path: video for path, video in todo.items() if not path.is_file()}
    for batch in _chunks(list(todo.items()), batch_size):
        clips = [_read_clip(generator, video_root, video) for _, video in batch]  # each (T, H, W, 3)
        latents = encode_videos(generator, clips)  # (B, *latent_shape)
        for (path, _), clip_latents in zip(batch, latents, strict=True):
            save_latents(path, clip_latents, version=generator.version, seed=None)


def _read_clip(generator: VideoGenerator, video_root: Path, video_path: str) -> np.ndarray:
    """A clip's `generator.num_frames` frames (T, H, W, 3), uint8, checked against the generator's size."""
    frames = read_frames(video_root / video_path, num_frames=generator.num_frames)
    if frames.shape[1:3] != (generator.height, generator.width):
        raise GeneratorError(
            f"{video_path}: frames are {frames.shape[2]}×{frames.shape[1]} (W×H), the generator "
            f"samples {generator.width}×{generator.height}; resize the real clips first"
        )
    return frames


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
