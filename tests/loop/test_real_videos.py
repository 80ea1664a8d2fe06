"""The real videos of the λ2 term in the main loop: the world's clean web clips, and a missing table."""

from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from ipo_ray.config import ConfigError, load_config
from ipo_ray.data import columns as col
from ipo_ray.data import read_frames
from ipo_ray.generator import WorldGenerator, encode_real_videos, load_latents, load_prompt_embeds
from ipo_ray.loop.job import run_job
from ipo_ray.loop.real_videos import RealVideosError
from ipo_ray.world.geometry import RenderSettings
from ipo_ray.world.real_set import write_real_set
from ipo_ray.world.render import render
from ipo_ray.world.web import sample_web_set

WEB = dict(web_clips=40, seed=3, defect_rate=0.3, strength_range=(0.5, 1.0))


def test_world_real_videos_are_the_web_sets_clean_clips_encoded_by_the_generator(tmp_path: Path) -> None:
    settings = RenderSettings()
    table = write_real_set(tmp_path, num_clips=6, settings=settings, **WEB)
    clean = [s for s in sample_web_set(40, 3, 0.3, (0.5, 1.0)) if not s.defects][:6]
    assert table.num_rows == 6 and len(set(table[col.VIDEO_ID].to_pylist())) == 6
    for row, spec in zip(table.to_pylist(), clean, strict=True):
        frames = read_frames(tmp_path / row[col.VIDEO_PATH], num_frames=None)
        # H.264 at crf 0 in yuv444p: the clean render, up to a level or two of rounding per channel.
        assert np.abs(frames.astype(int) - render(spec, settings).astype(int)).max() <= 3

    generator = WorldGenerator()
    encoded = encode_real_videos(generator, table, tmp_path, tmp_path / "cache")
    for row in encoded.to_pylist():
        latents = load_latents(tmp_path / "cache" / row[col.LATENT_PATH])
        assert tuple(latents.shape) == generator.latent_shape
        embeds = load_prompt_embeds(tmp_path / "cache" / row[col.PROMPT_EMBEDS_PATH])
        torch.testing.assert_close(embeds, generator.encode_prompt(row[col.CAPTION]))


def test_too_few_clean_web_clips_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lower align.real_web_clips or raise world.web.num_clips"):
        write_real_set(tmp_path, num_clips=40, settings=RenderSettings(), **WEB)


def test_a_missing_real_videos_table_is_named_before_ray_starts(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "real_videos.parquet"
    cfg = load_config(None, [f"run.root={tmp_path / 'runs'}", f"align.real_videos={missing}"])
    with pytest.raises(RealVideosError, match=f"align.real_videos: {missing} does not exist"):
        run_job(cfg)
    assert not ray.is_initialized()


def test_diffusers_backends_need_a_real_videos_table_unless_lambda2_is_off() -> None:
    wan = ["generator.backend=wan", "generator.height=16", "generator.width=16", "generator.num_frames=9"]
    with pytest.raises(ConfigError, match="align.real_videos: the 'wan' backend needs a real_videos table"):
        load_config(None, wan)
    assert load_config(None, [*wan, "align.lambda_real=0"]).align.real_videos is None
    assert load_config(None, [*wan, "align.real_videos=/data/real.parquet"]).align.uses_real
