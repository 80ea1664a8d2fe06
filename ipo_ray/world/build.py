"""Builders: config sections → the world's plain objects (the world itself never reads the config)."""

import os
from collections.abc import Sequence
from dataclasses import fields

import numpy as np

from ipo_ray.config import AnnotatorsConfig, Config, RenderConfig
from ipo_ray.world.annotators import Annotator, make_annotators
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import ClipSampler, SeedSetSummary, build_seed_set


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
    """The seed set of `world.seed_set` (sizes and seed overridable, e.g. for a held-out set); its
    generated share is sampled from the configured world generator."""
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
        generated_share=s.generated_share,
        sampler=generator_sampler(cfg) if s.generated_share > 0 else None,
    )


def generator_sampler(cfg: Config) -> ClipSampler:
    """Clips of the world generator of `generator` (model, steps, guidance), for the seed set.

    Raises:
        GeneratorError: the checkpoint is missing, of another type, or made for another clip geometry.
    """
    # Imported here: the world does not depend on the generator package, only this builder does.
    from ipo_ray.generator.types import GeneratorError, video_to_uint8
    from ipo_ray.generator.world import WorldGenerator
    from ipo_ray.generator.world_model import DEFAULT_CHECKPOINT

    gen = cfg.generator
    if gen.backend != "world":
        raise GeneratorError(f"the seed set's generated clips need the world backend, not {gen.backend!r}")
    model = WorldGenerator(
        gen.model_path or DEFAULT_CHECKPOINT,
        num_inference_steps=gen.num_inference_steps,
        guidance_scale=gen.guidance_scale,
    )
    if model.settings != render_settings(cfg.world.render):
        raise GeneratorError(
            f"the world generator makes {model.settings}, but world.render asks for "
            f"{render_settings(cfg.world.render)}: the seed set's clips must share one geometry"
        )

    def sample(texts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        return list(video_to_uint8(model.denoise_batch(model.encode_prompts(texts), seeds)))

    return sample
