"""The world's "real videos": clean clips of the web set, written as a real-videos dataset would be.

IPO Eq. 9 and LiFT Eq. 3 regularise alignment with the diffusion loss on real videos, the kind of data
the generator was pretrained on. In the world that is the web set (`web.py`); its clips without a
planted defect play the real videos, each captioned with a sentence of its prompt (`prompts.expand`).

Output directory:
    videos/real-<i>.mp4     every clip
and the returned ``real_videos`` table (video paths relative to the directory, not yet encoded).
"""

from pathlib import Path

import numpy as np
import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data import make_table, write_mp4
from ipo_ray.world.prompts import expand
from ipo_ray.world.render import RenderSettings, render
from ipo_ray.world.web import sample_web_set


def write_real_set(
    out_dir: str | Path,
    *,
    num_clips: int,
    web_clips: int,
    seed: int,
    defect_rate: float,
    strength_range: tuple[float, float],
    settings: RenderSettings,
) -> pa.Table:
    """Renders the first `num_clips` clean clips of the web set into `out_dir/videos`.

    Args:
        out_dir: the folder the videos go under; existing files of the same name are rewritten.
        num_clips: clean clips to keep.
        web_clips, seed, defect_rate, strength_range: the web set (``world.web``), sampled as
            `sample_web_set` does, so the clips are the web set's own.
        settings: clip geometry.

    Returns:
        A ``real_videos`` table of `num_clips` rows; ``video_path`` is relative to `out_dir`.

    Raises:
        ValueError: the web set has fewer than `num_clips` clean clips.
    """
    specs = [s for s in sample_web_set(web_clips, seed, defect_rate, strength_range) if not s.defects]
    if len(specs) < num_clips:
        raise ValueError(
            f"the web set ({web_clips} clips, defect rate {defect_rate}) has {len(specs)} clean clips, "
            f"fewer than the {num_clips} asked for; lower align.real_web_clips or raise world.web.num_clips"
        )
    out_dir = Path(out_dir)
    text_rng = np.random.default_rng(seed)  # captions are reproducible from the web seed
    rows = []
    for i, spec in enumerate(specs[:num_clips]):
        name = f"videos/real-{i:05d}.mp4"
        write_mp4(out_dir / name, render(spec, settings), fps=settings.fps)
        rows.append(
            {col.VIDEO_ID: f"real-{i:05d}", col.VIDEO_PATH: name, col.CAPTION: expand(spec.prompt, text_rng)}
        )
    return make_table(rows, "real_videos")
