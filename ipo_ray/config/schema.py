"""The config tree: frozen, strictly typed pydantic models, one per section.

Field names are a contract: builders and other modules read them by name. To add a section, write
one model (every field with a `description`) here or in a component's own file (`critic.py`,
`serve.py`, ...), and add it as a field of its parent; loading,
overrides, error messages, `to_flat_dict` and `dump_yaml` all walk the tree and need no change.
Regenerate `default.yaml` afterwards with `python -m ipo_ray.config > ipo_ray/config/default.yaml`
(a test checks the two agree).

Cross-field checks raise `CrossFieldError`, which names the field to fix, so the loader can report
`world.render.small_px: ...` rather than only the section.
"""

from typing import Self

from pydantic import Field, model_validator

from ipo_ray.config.align import AlignConfig
from ipo_ray.config.annotate import AnnotateConfig
from ipo_ray.config.base import CrossFieldError, FrameSide, Section, Seed, raise_problems
from ipo_ray.config.critic import CriticConfig
from ipo_ray.config.generator import GeneratorConfig
from ipo_ray.config.loop import LoopConfig
from ipo_ray.config.serve import ServeConfig

__all__ = ["Config", "CrossFieldError", "Section"]


class RenderConfig(Section):
    """How the embedded world's renderer draws a clip (sizes in pixels, speeds in pixels per frame)."""

    frames: int = Field(4, ge=2, description="Frames per rendered clip; at least 2 so motion is visible.")
    height: FrameSide = Field(16, description="Frame height in pixels; even and at least 8.")
    width: FrameSide = Field(16, description="Frame width in pixels; even and at least 8.")
    fps: int = Field(8, gt=0, description="Frames per second written into rendered videos.")
    small_px: float = Field(5.0, gt=0, description="Size in pixels of a 'small' subject.")
    large_px: float = Field(
        6.5,
        gt=0,
        description="Size in pixels of a 'large' subject; above small_px, below min(height, width)/2.",
    )
    slow_px_per_frame: float = Field(1.0, gt=0, description="Displacement per frame of a 'slow' subject.")
    fast_px_per_frame: float = Field(
        2.0, gt=0, description="Displacement per frame of a 'fast' subject; above slow_px_per_frame."
    )

    @model_validator(mode="after")
    def _check_sizes_and_speeds(self) -> Self:
        problems: list[tuple[str, str]] = []
        if self.small_px >= self.large_px:
            problems.append(
                ("small_px", f"must be smaller than large_px ({self.large_px}), got {self.small_px}")
            )
        # A large subject must fit in the frame with room to move, or "large" cannot be rendered.
        half_side = min(self.height, self.width) / 2
        if self.large_px >= half_side:
            problems.append(
                (
                    "large_px",
                    f"must be smaller than min(height, width)/2 = {half_side}, got {self.large_px}; "
                    "lower it or enlarge the frame",
                )
            )
        # The oracle tells speeds apart by displacement, so "fast" must move further than "slow".
        if self.slow_px_per_frame >= self.fast_px_per_frame:
            problems.append(
                (
                    "slow_px_per_frame",
                    f"must be smaller than fast_px_per_frame ({self.fast_px_per_frame}), "
                    f"got {self.slow_px_per_frame}",
                )
            )
        raise_problems(problems)
        return self


class WebConfig(Section):
    """The 'web' training set: clean clips mixed with clips carrying planted defects."""

    num_clips: int = Field(4096, gt=0, description="Number of clips in the web training set.")
    defect_rate: float = Field(0.3, ge=0, le=1, description="Fraction of clips rendered with a defect.")
    min_strength: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Smallest defect strength (0 = invisible, 1 = full); at most max_strength.",
    )
    max_strength: float = Field(1.0, gt=0, le=1, description="Largest defect strength, in (0, 1].")
    seed: Seed = Field(0, description="Seed for sampling prompts, render seeds and defects of the web set.")

    @model_validator(mode="after")
    def _check_strengths(self) -> Self:
        problems: list[tuple[str, str]] = []
        if self.min_strength > self.max_strength:
            problems.append(
                (
                    "min_strength",
                    f"must be at most max_strength ({self.max_strength}), got {self.min_strength}",
                )
            )
        raise_problems(problems)
        return self


class AnnotatorsConfig(Section):
    """The simulated human annotators whose majority vote forms the seed preference dataset."""

    count: int = Field(3, ge=1, description="Number of annotators per clip; odd avoids tied majority votes.")
    strictness_spread: float = Field(
        0.2, ge=0, description="Std of log(strictness) per annotator and dimension: lenient vs strict judges."
    )
    flip_rate: float = Field(
        0.15, ge=0, le=1, description="Chance an annotator moves a pointwise verdict to an adjacent one."
    )
    pair_flip_rate: float = Field(
        0.15, ge=0, le=1, description="Chance an annotator moves a pairwise preference to an adjacent one."
    )
    pair_score_noise: float = Field(
        0.05, ge=0, description="Std of the noise on an annotator's scores before a pairwise comparison."
    )
    seed: Seed = Field(0, description="Seed for annotator noise.")


class SeedSetConfig(Section):
    """The seed "human" dataset (IPO §3.1): clips and same-prompt pairs labelled by the annotators."""

    num_clips: int = Field(480, gt=0, description="Clips labelled pointwise (Good/Normal/Bad per dimension).")
    num_pairs: int = Field(240, ge=0, description="Same-prompt clip pairs labelled pairwise (A/B/tie).")
    defect_rate: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Share of clips with a planted defect; above the web set's, so flaws are seen.",
    )
    min_strength: float = Field(
        0.2, gt=0, le=1, description="Weakest planted defect; weak ones read as Normal. At most max_strength."
    )
    max_strength: float = Field(1.0, gt=0, le=1, description="Strongest planted defect, in (0, 1].")
    generated_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of the clips and pairs sampled from the world generator (generator.model_path, "
        "else the shipped small model; generator steps and guidance) instead of rendered: IPO's "
        "annotators judged the base model's own videos, and a critic that saw only renders misjudges "
        "generated clips.",
    )
    seed: Seed = Field(7, description="Seed for the seed set's prompts, renders and defects.")

    @model_validator(mode="after")
    def _check_strengths(self) -> Self:
        if self.min_strength > self.max_strength:
            raise_problems(
                [
                    (
                        "min_strength",
                        f"must be at most max_strength ({self.max_strength}), got {self.min_strength}",
                    )
                ]
            )
        return self


class BenchmarkConfig(Section):
    """The fixed evaluation prompt set."""

    num_prompts: int = Field(96, gt=0, description="Number of benchmark prompts.")
    seed: Seed = Field(
        2024, description="Seed that fixes the benchmark prompts; keep it apart from training seeds."
    )


class WorldConfig(Section):
    """The embedded procedural world used by the default run."""

    render: RenderConfig = Field(default_factory=RenderConfig, description="Renderer settings.")
    web: WebConfig = Field(default_factory=WebConfig, description="Web training set settings.")
    annotators: AnnotatorsConfig = Field(
        default_factory=AnnotatorsConfig, description="Simulated annotator settings."
    )
    seed_set: SeedSetConfig = Field(
        default_factory=SeedSetConfig, description="Seed human-preference dataset settings."
    )
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig, description="Benchmark settings.")


class VideoConfig(Section):
    """How videos are encoded to mp4 and sampled for judging."""

    num_frames: int = Field(
        16, gt=0, description="Frames sampled uniformly per video for judging (IPO §4.1.1)."
    )


class RunConfig(Section):
    """Where a run writes its tables, videos, checkpoints and manifests."""

    root: str = Field("runs", min_length=1, description="Directory holding all runs.")
    name: str | None = Field(None, description="Run directory name under root; null picks one at start.")


class Config(Section):
    """The whole ipo-ray configuration."""

    world: WorldConfig = Field(default_factory=WorldConfig, description="The embedded default world.")
    video: VideoConfig = Field(default_factory=VideoConfig, description="Video encoding and frame sampling.")
    run: RunConfig = Field(default_factory=RunConfig, description="Run directory.")
    generator: GeneratorConfig = Field(
        default_factory=GeneratorConfig, description="The video generator (policy)."
    )
    critic: CriticConfig = Field(
        default_factory=CriticConfig, description="The VLM critic: model, sampling, training."
    )
    serve: ServeConfig = Field(default_factory=ServeConfig, description="The critic's Ray Serve HTTP app.")
    align: AlignConfig = Field(default_factory=AlignConfig, description="Generator alignment (Ray Train).")
    loop: LoopConfig = Field(
        default_factory=LoopConfig, description="Dual-IPO rounds: stages, overlap, tracking."
    )
    annotate: AnnotateConfig = Field(
        default_factory=AnnotateConfig, description="The annotation studio (the seed set's labelling page)."
    )
    seed: Seed = Field(0, description="Global seed for everything not seeded by a section of its own.")

    @model_validator(mode="after")
    def _check_prompt_source(self) -> Self:
        # World candidates are scored by the oracle against each prompt's structured spec, which
        # only the world's grammar writes.
        if self.generator.backend == "world" and self.loop.prompt_source == "llm":
            raise_problems(
                [
                    (
                        "loop.prompt_source",
                        "llm prompts have no world spec for the oracle; use world (or file) with the "
                        "world backend, or a cogvideox/wan generator.backend",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _check_evaluation(self) -> Self:
        # The world is scored by its oracle benchmark; production-only evaluation settings would be
        # silently unused there, so they are refused.
        evaluation = self.loop.evaluation
        if self.generator.backend == "world" and (evaluation.vbench or evaluation.prompts_file):
            key = "vbench" if evaluation.vbench else "prompts_file"
            raise_problems(
                [
                    (
                        f"loop.evaluation.{key}",
                        "applies to cogvideox/wan generators only; the world backend is evaluated by its "
                        "oracle benchmark (world.benchmark)",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _check_real_videos(self) -> Self:
        # Only the world can make its own real videos (its web set); other backends need a table.
        if self.generator.backend != "world" and self.align.uses_real and self.align.real_videos is None:
            raise_problems(
                [
                    (
                        "align.real_videos",
                        f"the {self.generator.backend!r} backend needs a real_videos table for the λ2 "
                        "term; give its path, or set align.lambda_real: 0 (or align.real_batch_size: 0)",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _check_srpo_samples(self) -> Self:
        # With one sample per question no answer can dissent from the vote: the loss would get no pairs.
        if self.loop.srpo.preference_loss and self.critic.samples < 2:
            raise_problems(
                [
                    (
                        "loop.srpo.preference_loss",
                        f"needs critic.samples >= 2 to pair answers that reach the vote with answers "
                        f"that do not, got {self.critic.samples}; raise critic.samples or turn it off",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _check_oracle_judge(self) -> Self:
        # The oracle needs the world's prompt specs, answers pointwise, and leaves no critic to refresh.
        if self.loop.judge != "oracle":
            return self
        problems = []
        if self.generator.backend != "world":
            problems.append(("loop.judge", f"oracle judges world clips only, not {self.generator.backend!r}"))
        if self.loop.label_mode != "pointwise":
            problems.append(("loop.label_mode", "the oracle judge answers pointwise; set pointwise"))
        if self.loop.srpo.trigger != "never":
            problems.append(
                ("loop.srpo.trigger", "loop.judge oracle leaves no critic labels to refresh from; set never")
            )
        raise_problems(problems)
        return self

    @model_validator(mode="after")
    def _check_adapter_refresh(self) -> Self:
        # Adapter versions are served on the default critic's engine, which must take their rank.
        srpo, rank = self.loop.srpo, self.critic.train.lora_rank
        problems = []
        if srpo.save_adapter and not srpo.lora:
            problems.append(("loop.srpo.save_adapter", "needs loop.srpo.lora: true"))
        if srpo.save_adapter and self.serve.max_lora_rank < rank:
            problems.append(
                (
                    "serve.max_lora_rank",
                    f"is {self.serve.max_lora_rank}; adapter refreshes of rank {rank} "
                    "(critic.train.lora_rank) need it at least that",
                )
            )
        raise_problems(problems)
        return self
