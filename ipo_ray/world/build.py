"""Builders: config sections → the world's plain objects (the world itself never reads the config)."""

import os
from dataclasses import fields

from ipo_ray.config import AnnotatorsConfig, Config, RenderConfig
from ipo_ray.world.annotators import Annotator, make_annotators
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import SeedSetSummary, build_seed_set


def render_settings(cfg: RenderConfig) -> RenderSettings:
    """The renderer's settings from `world.render` (same field names, checked by a test)."""
    return RenderSettings(**{f.name: getattr(cfg, f.name) for f in fields(RenderSettings)})


def annotators(cfg: AnnotatorsConfig) -> list[Annotator]:
    """The simulated annotators of `world.annotators`."""
    return make_annotators(
        n=cfg.count,
        seed=cfg.seed,
        strictness_spread=cfg.strictness_spread,
        flip_rate=cfg.flip_rate,
        pair_flip_rate=cfg.pair_flip_rate,
        pair_score_noise=cfg.pair_score_noise,
    )


def seed_set(
    cfg: Config,
    out_dir: str | os.PathLike[str],
    *,
    num_clips: int | None = None,
    num_pairs: int | None = None,
    seed: int | None = None,
) -> SeedSetSummary:
    """The seed set of `world.seed_set` (sizes and seed overridable, e.g. for a held-out set)."""
    s = cfg.world.seed_set
    return build_seed_set(
        out_dir,
        num_clips=s.num_clips if num_clips is None else num_clips,
        num_pairs=s.num_pairs if num_pairs is None else num_pairs,
        defect_rate=s.defect_rate,
        strength_range=(s.min_strength, s.max_strength),
        seed=s.seed if seed is None else seed,
        annotators=annotators(cfg.world.annotators),
        settings=render_settings(cfg.world.render),
    )
