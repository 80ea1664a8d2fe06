"""Each round's prompts: fresh from the world's grammar, drawn from a prompts file, or LLM-expanded.

IPO §3.1 and LiFT §3.1 build prompts by combining categories and expanding them into sentences; the
world grammar does exactly that, and a round's prompts are a function of (run seed, round), so a
resumed round asks the same questions. A prompts file (any prompts table) is sampled without
replacement per round with the same determinism. In production an instruct LLM expands category
combinations (`prompt_expander`), in a Ray task of its own so the engine's memory (GPU or CPU) is
given back when the round's prompts are written.
"""

import hashlib
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from ipo_ray.config.loop import LoopConfig
from ipo_ray.config.prompts import PromptLlmConfig
from ipo_ray.data import columns as col
from ipo_ray.data import make_table, read_table
from ipo_ray.loop.prompt_expander import PromptExpander, Sampling, check_model
from ipo_ray.world.prompts import sample_prompts, spec_to_json

SOURCE = "world-grammar"
MODEL_KEY = "loop.prompt_llm.model"


def round_seed(seed: int, round_index: int, purpose: str) -> int:
    """A seed for one purpose in one round, independent of every other (purpose, round)."""
    tag = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "little")
    return int(np.random.SeedSequence([seed, round_index, tag]).generate_state(1)[0])


def world_prompts(num_prompts: int, seed: int, round_index: int) -> pa.Table:
    """A prompts table of `num_prompts` world prompts for a round, ids ``r<round>-p<index>``."""
    rows = [
        {
            col.PROMPT_ID: f"r{round_index}-p{i:04d}",
            col.TEXT: text,
            col.SPEC_JSON: spec_to_json(spec),
            col.SOURCE: SOURCE,
        }
        for i, (text, spec) in enumerate(
            sample_prompts(num_prompts, round_seed(seed, round_index, "prompts"))
        )
    ]
    return make_table(rows, "prompts")


def file_prompts(path: str, num_prompts: int, seed: int, round_index: int) -> pa.Table:
    """`num_prompts` rows of a committed prompts table, a different deterministic draw each round.

    Raises:
        ValueError: The file holds fewer prompts than a round asks for.
    """
    table = read_table(path, "prompts")
    if table.num_rows < num_prompts:
        raise ValueError(f"{path} holds {table.num_rows} prompts; a round asks for {num_prompts}")
    rng = np.random.default_rng(round_seed(seed, round_index, "prompts"))
    return table.take(np.sort(rng.choice(table.num_rows, size=num_prompts, replace=False)))


def expander_kwargs(settings: PromptLlmConfig, seed: int) -> dict[str, Any]:
    """`PromptExpander` arguments from the config section, its engine seeded with `seed`."""
    if settings.model is None:
        raise ValueError(f"{MODEL_KEY}: prompt_source llm needs an instruct-LLM checkpoint folder")
    return {
        "model": settings.model,
        "categories": settings.categories,
        "sampling": [Sampling(s.temperature, s.top_k, s.top_p) for s in settings.sampling],
        "samples_per_request": settings.samples_per_request,
        "max_subjects": settings.max_subjects,
        "max_tokens": settings.max_tokens,
        "max_chars": settings.max_chars,
        "max_passes": settings.max_passes,
        "seed": seed,
        "dtype": settings.dtype,
        "max_model_len": settings.max_model_len,
        "kv_cache_gib": settings.kv_cache_gib,
    }


def _expand(kwargs: dict[str, Any], num_prompts: int, seed: int, id_prefix: str) -> tuple[list[dict], dict]:
    rows, stats = PromptExpander(**kwargs).expand(num_prompts, seed, id_prefix)
    return rows, asdict(stats)


def llm_prompts(
    settings: PromptLlmConfig, num_prompts: int, round_index: int
) -> tuple[pa.Table, dict[str, int]]:
    """`num_prompts` LLM-expanded prompts for a round (ids ``r<round>-p<index>``) and the expansion's counts.

    The model is checked here, before a task or engine starts; the engine runs in a one-call Ray
    task with the section's CPUs and GPUs, so its worker exits afterwards.
    """
    expansion_seed = round_seed(settings.seed, round_index, "llm-prompts")
    kwargs = expander_kwargs(settings, expansion_seed)
    check_model(kwargs["model"], MODEL_KEY)
    task = ray.remote(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, max_calls=1)(_expand)
    rows, stats = ray.get(task.remote(kwargs, num_prompts, expansion_seed, f"r{round_index}-p"))
    return make_table(rows, "prompts"), stats


def source_prompts(
    loop: LoopConfig, num_prompts: int, seed: int, round_index: int
) -> tuple[pa.Table, dict[str, int]]:
    """`num_prompts` prompts from the configured ``loop.prompt_source`` for a round, and its counts."""
    if loop.prompt_source == "file":
        assert loop.prompts_file is not None  # the config refuses source file without one
        return file_prompts(loop.prompts_file, num_prompts, seed, round_index), {}
    if loop.prompt_source == "llm":
        table, stats = llm_prompts(loop.prompt_llm, num_prompts, round_index)
        return table, {f"llm_{name}": value for name, value in stats.items()}
    return world_prompts(num_prompts, seed, round_index), {}
