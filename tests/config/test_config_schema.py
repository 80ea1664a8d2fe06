"""The config models: defaults, documentation, immutability and cross-field constraints."""

import pytest
from pydantic import BaseModel, ValidationError

from ipo_ray.config import Config, RenderConfig, WebConfig
from ipo_ray.config.critic_train import CriticTrainConfig


def _sections(model: type[BaseModel]) -> list[type[BaseModel]]:
    """`model` and every section model below it."""
    found = [model]
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found.extend(_sections(field.annotation))
    return found


def test_defaults_match_the_contract() -> None:
    cfg = Config()
    assert cfg.world.render == RenderConfig(
        frames=4,
        height=16,
        width=16,
        fps=8,
        small_px=5.0,
        large_px=6.5,
        slow_px_per_frame=1.0,
        fast_px_per_frame=2.0,
    )
    assert (cfg.world.web.num_clips, cfg.world.web.defect_rate, cfg.world.web.seed) == (4096, 0.3, 0)
    assert (cfg.world.web.min_strength, cfg.world.web.max_strength) == (0.5, 1.0)
    a = cfg.world.annotators
    assert (a.count, a.seed, a.strictness_spread) == (3, 0, 0.2)
    assert (a.flip_rate, a.pair_flip_rate, a.pair_score_noise) == (0.15, 0.15, 0.05)
    assert (cfg.world.benchmark.num_prompts, cfg.world.benchmark.seed) == (96, 2024)
    assert cfg.video.num_frames == 16
    assert (cfg.run.root, cfg.run.name, cfg.seed) == ("runs", None, 0)


@pytest.mark.parametrize("section", _sections(Config), ids=lambda m: m.__name__)
def test_every_section_is_frozen_strict_documented(section: type[BaseModel]) -> None:
    assert section.model_config.get("frozen") is True
    assert section.model_config.get("extra") == "forbid"
    assert section.model_config.get("strict") is True
    assert section.__doc__
    undocumented = [name for name, field in section.model_fields.items() if not field.description]
    assert not undocumented, f"{section.__name__}: give these fields a description: {undocumented}"


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.seed = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        cfg.world.render.frames = 8  # type: ignore[misc]


def test_config_is_hashable_and_compares_by_value() -> None:
    assert Config() == Config()
    assert hash(Config()) == hash(Config())


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"small_px": 7.0, "large_px": 7.0}, "small_px"),
        ({"large_px": 8.0}, "large_px"),  # min(16, 16) / 2 = 8
        ({"slow_px_per_frame": 2.0}, "slow_px_per_frame"),
    ],
)
def test_render_cross_field_constraints(values: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RenderConfig(**values)


def test_strengths_must_be_ordered() -> None:
    WebConfig(min_strength=0.5, max_strength=0.5)  # equal is allowed
    with pytest.raises(ValidationError, match="min_strength"):
        WebConfig(min_strength=0.6, max_strength=0.5)


@pytest.mark.parametrize("height", [15, 6])
def test_frame_sides_are_even_and_at_least_8(height: int) -> None:
    with pytest.raises(ValidationError):
        RenderConfig(height=height)


def test_strict_types() -> None:
    with pytest.raises(ValidationError):
        RenderConfig(frames="8")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RenderConfig(frames=True)  # type: ignore[arg-type]
    assert RenderConfig(small_px=5).small_px == 5.0  # an int is a fine float


def test_deepening_needs_a_full_init_critic_trained_in_full() -> None:
    CriticTrainConfig(init="runs/critic", deepen_layers=2)
    with pytest.raises(ValidationError, match="deepen_layers.*set init"):
        CriticTrainConfig(deepen_layers=2)
    with pytest.raises(ValidationError, match="deepen_layers.*lora: false"):
        CriticTrainConfig(init="runs/critic", deepen_layers=2, lora=True)


def test_a_critic_language_model_width_needs_heads_of_32() -> None:
    CriticTrainConfig(text_hidden=256, text_layers=4, text_intermediate=512)
    with pytest.raises(ValidationError, match="text_hidden.*multiple of 64"):
        CriticTrainConfig(text_hidden=96)
