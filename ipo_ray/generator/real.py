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
from pathlib import Path

import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data.validation import make_table, validate_table
from ipo_ray.data.video import read_frames
from ipo_ray.generator.files import cached_prompt_embeds, prompt_id_for, save_latents
from ipo_ray.generator.types import GeneratorError, VideoGenerator

REAL_LATENTS_DIR = "real_latents"
REAL_EMBEDS_DIR = "real_prompt_embeds"


def encode_real_videos(
    generator: VideoGenerator,
    videos: pa.Table,
    video_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
) -> pa.Table:
    """Encodes every clip and caption of a real-videos table that has no cached files yet.

    Each clip is read as `generator.num_frames` frames sampled uniformly over it (`read_frames`), so a
    clip of another length is resampled in time; its frame size must already be the generator's
    (resizing and cropping are a data-preparation choice, made before this step).

    Args:
        generator: The backend whose VAE and text encoder encode (any, e.g. `CogVideoXGenerator`).
        videos: A ``real_videos`` table; ``video_path`` is relative to `video_root`.
        video_root: Directory the video paths are relative to.
        out_dir: Directory the files go under; the paths in the result are relative to it.

    Returns:
        The table with ``latent_path`` and ``prompt_embeds_path`` set on every row.

    Raises:
        TableValidationError: `videos` is not a valid real-videos table.
        GeneratorError: A clip's frame size differs from the generator's.
    """
    validate_table(videos, "real_videos")
    video_root, out_dir = Path(video_root), Path(out_dir)
    rows = videos.to_pylist()
    for row in rows:
        latent_rel = f"{REAL_LATENTS_DIR}/{row[col.VIDEO_ID]}.safetensors"
        embeds_rel = f"{REAL_EMBEDS_DIR}/{prompt_id_for(row[col.CAPTION])}.safetensors"
        row[col.LATENT_PATH], row[col.PROMPT_EMBEDS_PATH] = latent_rel, embeds_rel
        cached_prompt_embeds(generator, row[col.CAPTION], out_dir / embeds_rel)
        if (out_dir / latent_rel).is_file():
            continue
        frames = read_frames(video_root / row[col.VIDEO_PATH], num_frames=generator.num_frames)
        if frames.shape[1:3] != (generator.height, generator.width):
            raise GeneratorError(
                f"{row[col.VIDEO_PATH]}: frames are {frames.shape[2]}×{frames.shape[1]} (W×H), the generator "
                f"samples {generator.width}×{generator.height}; resize the real clips first"
            )
        save_latents(
            out_dir / latent_rel, generator.encode_video(frames), version=generator.version, seed=None
        )
    return make_table(rows, "real_videos")
