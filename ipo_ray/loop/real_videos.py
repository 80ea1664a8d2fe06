"""Round 0's ``real`` stage: the real videos of the λ2 term (IPO Eq. 9), encoded once per run.

Where the clips come from: with the world backend and no ``align.real_videos``, the clean clips of
the world's web set (`ipo_ray.world.real_set`), rendered into the stage folder; otherwise the
configured real-videos table, checked at job start (`check_real_source`) so a missing path fails
before Ray starts. Either way the clips and captions are encoded by the base generator's VAE and text
encoder in one Ray task holding the generator's resources (a GPU on a cluster); alignment never
changes those components, so one encoding serves every round. The stage commits
``real_videos.parquet`` (paths relative to the stage folder) beside ``real_latents/`` and
``real_prompt_embeds/``; a resumed stage keeps the files already encoded.
"""

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray

from ipo_ray.config import Config
from ipo_ray.data import columns as col
from ipo_ray.data import read_table, write_table
from ipo_ray.data.tables import TableError, is_committed
from ipo_ray.generator.real import encode_real_videos
from ipo_ray.generator.stage import BACKENDS
from ipo_ray.loop.stages import REAL, RoundContext, StageResult, base_generator_path, generator_kwargs
from ipo_ray.world.build import render_settings
from ipo_ray.world.real_set import write_real_set


class RealVideosError(ValueError):
    """The configured real-videos table cannot be used; the message names the path and the fix."""


def check_real_source(cfg: Config) -> None:
    """Fails fast, before Ray or training starts, if the configured real-videos table is unusable.

    Raises:
        RealVideosError: ``align.real_videos`` names a missing or uncommitted table.
    """
    path = cfg.align.real_videos
    if not cfg.align.uses_real or path is None:
        return
    if not Path(path).is_file():
        raise RealVideosError(
            f"align.real_videos: {path} does not exist; give the path of a committed real_videos table "
            "(ipo_ray.data.write_table(table, path, 'real_videos')), or set align.lambda_real: 0"
        )
    try:
        read_table(path, "real_videos")
    except TableError as error:
        raise RealVideosError(f"align.real_videos: {error}") from None


def _encode(
    backend: str, kwargs: dict[str, Any], videos: pa.Table, video_root: str, out_dir: str
) -> pa.Table:
    """Builds the backend and encodes the clips (the body of the Ray task)."""
    return encode_real_videos(BACKENDS[backend][0](**kwargs), videos, video_root, out_dir)


def real_videos_stage(ctx: RoundContext) -> StageResult:
    """The run's real videos: gathered, encoded by the base generator, committed as a table."""
    cfg, out = ctx.cfg, ctx.dir(REAL)
    path = out / "real_videos.parquet"
    if is_committed(path):  # committed by an attempt stopped before its stage manifest
        return _result(ctx, read_table(path, "real_videos"), path)
    if cfg.align.real_videos is None:  # the world (the config refuses other backends without a table)
        web = cfg.world.web
        videos = write_real_set(
            out,
            num_clips=cfg.align.real_web_clips,
            web_clips=web.num_clips,
            seed=web.seed,
            defect_rate=web.defect_rate,
            strength_range=(web.min_strength, web.max_strength),
            settings=render_settings(cfg.world.render),
        )
        video_root = out
    else:
        videos = read_table(cfg.align.real_videos, "real_videos")
        video_root = Path(cfg.align.real_videos).parent
    gen = cfg.generator
    kwargs = generator_kwargs(cfg, base_generator_path(cfg), f"{gen.backend}-v0")
    task = ray.remote(_encode).options(num_cpus=gen.cpus_per_actor, num_gpus=gen.gpus_per_actor)
    encoded = ray.get(task.remote(gen.backend, kwargs, videos, os.fspath(video_root), os.fspath(out)))
    write_table(encoded, path, "real_videos")
    return _result(ctx, encoded, path)


def _result(ctx: RoundContext, table: pa.Table, path: Path) -> StageResult:
    captions = len(set(table[col.CAPTION].to_pylist()))
    return StageResult(
        {"clips": table.num_rows, "captions": captions}, {"real_videos": ctx.run.relative(path)}
    )
