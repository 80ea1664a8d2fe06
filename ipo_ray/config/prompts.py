"""Config section `loop.prompt_llm`: prompts expanded from combined categories by a local instruct LLM.

IPO §3.1 and LiFT §3.1 make prompts by combining category words (subjects, actions, scenes) and
having an instruct LLM refine each combination into a description, varying temperature, top-k and
top-p for diversity. `ipo_ray.loop.prompt_expander` does that through vLLM; these are its settings.
"""

from typing import Literal

from pydantic import Field

from ipo_ray.config.base import Section, Seed


class SamplingSetting(Section):
    """One (temperature, top-k, top-p) setting; requests cycle through the configured list."""

    temperature: float = Field(
        ..., gt=0, description="Sampling temperature; > 0 (greedy gives n identical samples)."
    )
    top_k: int = Field(..., ge=0, description="Top-k cut-off; 0 = no cut-off.")
    top_p: float = Field(..., gt=0, le=1, description="Nucleus sampling mass.")


def _default_sampling() -> tuple[SamplingSetting, ...]:
    # From conservative to adventurous: the papers vary all three "to increase diversity".
    return (
        SamplingSetting(temperature=0.7, top_k=40, top_p=0.9),
        SamplingSetting(temperature=0.9, top_k=80, top_p=0.95),
        SamplingSetting(temperature=1.1, top_k=0, top_p=1.0),
    )


class PromptLlmConfig(Section):
    """Prompt expansion by a local instruct LLM on vLLM (``loop.prompt_source: llm``)."""

    model: str | None = Field(
        None,
        description="Instruct-LLM checkpoint folder (e.g. a local Qwen2.5-7B-Instruct); a hub id only "
        "where the hub is reachable. Required when loop.prompt_source is llm.",
    )
    categories: str | None = Field(
        None,
        description="Categories file (YAML/JSON: lists subjects, actions, scenes, styles); null = the "
        "shipped ipo_ray/assets/prompt_categories.yaml.",
    )
    max_subjects: int = Field(2, ge=1, description="Subjects per combination: 1..this (LiFT: 1–2).")
    samples_per_request: int = Field(
        4, ge=1, description="Descriptions sampled per combination (vLLM n) under one sampling setting."
    )
    # A tuple keeps the config hashable; strict=False lets YAML's list fill it (items stay strict).
    sampling: tuple[SamplingSetting, ...] = Field(
        default_factory=_default_sampling,
        min_length=1,
        strict=False,
        description="Sampling settings cycled across requests (request i uses setting i mod len).",
    )
    max_tokens: int = Field(96, ge=1, description="Longest description in tokens.")
    max_chars: int = Field(
        400, ge=16, description="Cleaned descriptions are cut to this many characters at a word boundary."
    )
    max_passes: int = Field(
        3,
        ge=1,
        description="Engine calls per round at most; each asks for what dropped empties and duplicates left "
        "missing, and the stage fails naming the counts if a round is still short after them.",
    )
    seed: Seed = Field(0, description="Seeds the category draws and the engine (per round).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Engine dtype; auto = the checkpoint's."
    )
    max_model_len: int = Field(1024, ge=64, description="Longest instruction + description in tokens.")
    kv_cache_gib: int = Field(1, ge=1, description="vLLM CPU KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE).")
    num_cpus: float = Field(1.0, gt=0, description="CPUs of the Ray task that runs the engine.")
    num_gpus: float = Field(
        0.0, ge=0, description="GPUs of the Ray task that runs the engine (1 on a GPU node)."
    )
