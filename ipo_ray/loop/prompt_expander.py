"""Prompts expanded by a local instruct LLM on vLLM from seeded category combinations (IPO/LiFT §3.1).

Each request is one combination (`prompt_categories.combine`) rendered with the model's own chat
template, sampled n times under one (temperature, top-k, top-p) setting; requests cycle through the
settings so a round mixes conservative and adventurous descriptions. Samples are cleaned to one line
(`clean_description`), and empties and exact duplicates are dropped and counted. When drops leave a
round short, another engine call asks for what is missing (new combinations), up to ``max_passes``
calls; a round still short after them is an error, never a smaller round.

vLLM is imported only when an engine starts, so the cleaner and the model check are cheap to import.
"""

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from huggingface_hub import HfApi, is_offline_mode

from ipo_ray.data import columns as col
from ipo_ray.loop.prompt_categories import Combination, combine, instruction, load_categories

SOURCE: Final = "llm-expanded"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_TRUE = {"1", "ON", "YES", "TRUE"}
# Chat models like to announce their answer ("Sure! Here is a description:", "Prompt 1:").
_PREFIX = re.compile(
    r"^(?:(?:sure|okay|ok|certainly)\b[!,.]*\s*)?"
    r"(?:here(?:'s| is)\b[^:]*:\s*)?"
    r"(?:(?:video\s+)?(?:description|prompt|caption)\s*\d*\s*:\s*)?",
    re.IGNORECASE,
)
_LIST_MARK = re.compile(r"^(?:[-*•]\s+|\d+[.)]\s+)")
_PAIRED = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`", "*": "*", "«": "»"}
_TRAILING = " ,;:-–—"


@dataclass(frozen=True)
class Sampling:
    """One sampling setting of the cycle."""

    temperature: float
    top_k: int  # 0 = no cut-off
    top_p: float


@dataclass
class ExpansionStats:
    """Counts of one `PromptExpander.expand` call (stage metrics)."""

    passes: int = 0
    requests: int = 0
    samples: int = 0
    empty: int = 0
    duplicates: int = 0
    surplus: int = 0  # kept descriptions beyond the round's count, left out


def check_model(model: str, key: str = "model") -> None:
    """Refuses a model the engine could not load, before any engine or GPU time is spent.

    Args:
        model: A checkpoint folder, or a hub id where the hub is reachable.
        key: What the messages call the setting (the config key).

    Raises:
        FileNotFoundError: Neither a folder nor a hub id.
        ValueError: A folder without config.json, a hub id while offline, or a hub that did not answer.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{key}: {model} has no config.json: give an instruct-LLM checkpoint folder")
        return
    if not _HUB_ID.fullmatch(model):
        raise FileNotFoundError(f"{key}: {model} is no checkpoint folder (and no hub id)")
    # huggingface_hub reads HF_HUB_OFFLINE once at import; the variable is read again so a job's
    # environment set later counts too.
    if is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
        raise ValueError(
            f"{key}: {model!r} is not a local folder and the hub is offline (HF_HUB_OFFLINE); download the "
            "checkpoint and give its local path"
        )
    try:
        HfApi().model_info(model, timeout=10)
    except Exception as error:  # any failure (network, auth, missing repo) means the same to the user
        raise ValueError(
            f"{key}: {model!r} is not a local folder and the hub did not confirm it ({error}); give a local "
            "checkpoint path"
        ) from error


def clean_description(text: str, max_chars: int) -> str:
    """One line of description from a raw sample; "" when nothing is left.

    The first line with content after removing unprintable characters, list marks, announcement
    prefixes ("Here is …:", "Description:") and enclosing quotes wins; whitespace is collapsed, and a
    longer line is cut at the last word boundary within `max_chars`, trailing separators removed.
    """
    for line in text.splitlines():
        # Control characters and U+FFFD (bytes that decoded to no character) would reach the
        # generator's text encoder and the annotation page; nothing a reader needs is lost.
        line = "".join(ch for ch in line if (ch.isprintable() or ch.isspace()) and ch != "\ufffd")
        line = _PREFIX.sub("", _LIST_MARK.sub("", " ".join(line.split())))
        while len(line) >= 2 and _PAIRED.get(line[0]) == line[-1]:
            line = line[1:-1].strip()
        if line[:1] in _PAIRED and _PAIRED[line[0]] not in line[1:]:  # an opening quote never closed
            line = line[1:].strip()
        if line:
            return _cap(line, max_chars)
    return ""


def _cap(line: str, max_chars: int) -> str:
    if len(line) <= max_chars:
        return line
    space = line.rfind(" ", 0, max_chars + 1)
    return line[: space if space > 0 else max_chars].rstrip(_TRAILING)


def collect(
    samples: list[list[str]],
    requests: list[tuple[Combination, Sampling]],
    max_chars: int,
    seen: set[str],
    stats: ExpansionStats,
) -> list[dict[str, Any]]:
    """Cleaned, new descriptions with what made them, in request and sample order.

    Args:
        samples: The raw texts of each request.
        requests: Each request's combination and sampling setting.
        max_chars: Length cap of `clean_description`.
        seen: Descriptions kept so far (updated): a repeat counts as a duplicate.
        stats: Updated with samples, empties and duplicates.

    Returns:
        Rows without ``prompt_id``: text, spec_json (categories and sampling), source.
    """
    rows = []
    for texts, (combination, sampling) in zip(samples, requests, strict=True):
        for raw in texts:
            stats.samples += 1
            text = clean_description(raw, max_chars)
            if not text:
                stats.empty += 1
            elif text in seen:
                stats.duplicates += 1
            else:
                seen.add(text)
                spec = {"categories": combination.as_dict(), "sampling": asdict(sampling)}
                rows.append({col.TEXT: text, col.SPEC_JSON: json.dumps(spec), col.SOURCE: SOURCE})
    return rows


class PromptExpander:
    """An instruct LLM on vLLM that turns category combinations into prompt rows.

    Args:
        model: Checkpoint folder (a hub id only where the hub is reachable; see `check_model`).
        categories: Categories file; None = the shipped default.
        sampling: Settings cycled across requests.
        samples_per_request: n per request.
        max_subjects: Subjects per combination: 1..this.
        max_tokens: Longest sample in tokens.
        max_chars: Length cap of a cleaned description.
        max_passes: Engine calls per `expand` at most.
        seed: Engine seed: a fresh engine given the same calls samples the same texts.
        dtype: Engine dtype.
        max_model_len: Longest instruction + sample in tokens.
        kv_cache_gib: vLLM CPU KV cache in GiB (`vllm_backend.start_engine`).
        engine_kwargs: Further `vllm.LLM` arguments.
    """

    def __init__(
        self,
        model: str,
        categories: str | Path | None,
        sampling: list[Sampling],
        samples_per_request: int = 4,
        max_subjects: int = 2,
        max_tokens: int = 96,
        max_chars: int = 400,
        max_passes: int = 3,
        seed: int = 0,
        dtype: str = "auto",
        max_model_len: int = 1024,
        kv_cache_gib: int = 1,
        **engine_kwargs: Any,
    ) -> None:
        if not sampling:
            raise ValueError("sampling needs at least one setting")
        check_model(model)
        self.categories = load_categories(categories)
        self.sampling = list(sampling)
        self.n = samples_per_request
        self.max_subjects = max_subjects
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.max_passes = max_passes
        from ipo_ray.critic.vllm_backend import start_engine  # imports vLLM

        self.engine = start_engine(
            model, kv_cache_gib, dtype=dtype, max_model_len=max_model_len, seed=seed, **engine_kwargs
        )
        self.tokenizer = self.engine.get_tokenizer()

    def expand(
        self, num_prompts: int, seed: int, id_prefix: str = "p"
    ) -> tuple[list[dict[str, Any]], ExpansionStats]:
        """`num_prompts` prompt rows (ids ``<id_prefix><index>``) and the counts behind them.

        Combinations come from ``numpy.random.default_rng(seed)``: the first engine call's are a
        function of the seed alone.

        Raises:
            RuntimeError: Still short of `num_prompts` after ``max_passes`` engine calls.
        """
        rng = np.random.default_rng(seed)
        stats, seen, rows = ExpansionStats(), set[str](), []
        while len(rows) < num_prompts and stats.passes < self.max_passes:
            combinations = combine(
                self.categories, math.ceil((num_prompts - len(rows)) / self.n), rng, self.max_subjects
            )
            requests = [
                (c, self.sampling[(stats.requests + i) % len(self.sampling)])
                for i, c in enumerate(combinations)
            ]
            rows += collect(self._sample(requests), requests, self.max_chars, seen, stats)
            stats.passes += 1
            stats.requests += len(requests)
        if len(rows) < num_prompts:
            raise RuntimeError(
                f"{len(rows)} of {num_prompts} prompts after {stats.passes} passes: {stats.samples} samples, "
                f"{stats.empty} empty, {stats.duplicates} duplicates; raise max_passes or "
                "samples_per_request, or check the model's outputs"
            )
        stats.surplus = len(rows) - num_prompts
        return [
            {col.PROMPT_ID: f"{id_prefix}{i:04d}"} | row for i, row in enumerate(rows[:num_prompts])
        ], stats

    def _sample(self, requests: list[tuple[Combination, Sampling]]) -> list[list[str]]:
        from vllm import SamplingParams

        prompts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": instruction(c)}], tokenize=False, add_generation_prompt=True
            )
            for c, _ in requests
        ]
        params = [
            SamplingParams(
                n=self.n, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, max_tokens=self.max_tokens
            )
            for _, s in requests
        ]
        outputs = self.engine.generate(prompts, params, use_tqdm=False)
        # The synchronous engine returns final outputs; sort so sample i is completion i.
        return [[c.text for c in sorted(out.outputs, key=lambda c: c.index)] for out in outputs]
