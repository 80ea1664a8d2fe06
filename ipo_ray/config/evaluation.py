"""Config section `loop.evaluation`: how a cogvideox/wan generator is evaluated after each round.

The world backend is scored by its oracle benchmark (`world.benchmark`) and ignores this section
apart from refusing settings that only apply to production backends (see `Config`).
"""

from typing import Literal, Self

from pydantic import Field, model_validator

from ipo_ray.config.base import Section, raise_problems

# VBench dimensions that its custom-input mode (any prompt, not VBench's own prompt suite) scores.
VBenchDimension = Literal[
    "subject_consistency",
    "background_consistency",
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
    "temporal_flickering",
    "temporal_style",
    "overall_consistency",
    "human_action",
]


class EvaluationConfig(Section):
    """Evaluation of v(k+1) on diffusers backends: fixed prompts and seeds, flicker, critic, VBench."""

    num_prompts: int = Field(
        16, ge=1, description="Evaluation prompts; one clip each, with the same seed every round."
    )
    prompts_file: str | None = Field(
        None,
        description="A prompts table (Parquet) whose first num_prompts rows are the evaluation set; null = "
        "num_prompts drawn once from the run's prompt source at round index 0, which no training round uses.",
    )
    vbench: bool = Field(
        False,
        description="Also run the full VBench (the `vbench` package, installed by the user, and its "
        "weights in vbench_weights) on the evaluation clips; the job refuses to start without them.",
    )
    vbench_weights: str | None = Field(
        None,
        description="vbench: the folder holding VBench's downloaded checkpoints (its VBENCH_CACHE_DIR).",
    )
    vbench_dimensions: tuple[VBenchDimension, ...] = Field(
        ("subject_consistency", "background_consistency", "motion_smoothness", "dynamic_degree"),
        description="vbench: the dimensions to run (those VBench scores on custom prompts).",
        strict=False,  # YAML gives a list; the frozen config keeps a tuple
    )

    @model_validator(mode="after")
    def _check_vbench(self) -> Self:
        problems: list[tuple[str, str]] = []
        if self.vbench and self.vbench_weights is None:
            problems.append(("vbench_weights", "vbench: true needs the folder of VBench's checkpoints"))
        if self.vbench and not self.vbench_dimensions:
            problems.append(("vbench_dimensions", "vbench: true needs at least one dimension"))
        raise_problems(problems)
        return self
