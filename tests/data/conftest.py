"""Sample rows for every table kind, shared by the tests of ipo_ray.data."""

import json
from collections.abc import Callable
from typing import Any

import pytest

from ipo_ray.data import columns as col
from ipo_ray.data.schemas import TableKind

_ZERO_VOTES = {
    c: 0 for c in (col.VOTES_GOOD, col.VOTES_NORMAL, col.VOTES_BAD, col.VOTES_A, col.VOTES_B, col.VOTES_TIE)
}


def _rows(kind: TableKind, n: int, start: int) -> list[dict[str, Any]]:
    ids = range(start, start + n)
    if kind is TableKind.PROMPTS:
        return [
            {
                col.PROMPT_ID: f"p{i}",
                col.TEXT: f"A small red circle moves left {i}.",
                col.SPEC_JSON: json.dumps({"subjects": [{"shape": "circle"}]}) if i % 2 else None,
                col.SOURCE: "world",
            }
            for i in ids
        ]
    if kind is TableKind.CANDIDATES:
        return [
            {
                col.CANDIDATE_ID: f"c{i}",
                col.PROMPT_ID: f"p{i // 2}",
                col.SEED: 2**40 + i,
                col.GENERATOR_VERSION: "g0",
                col.LATENT_PATH: f"latents/c{i}.pt",
                col.VIDEO_PATH: f"videos/c{i}.mp4",
                col.ROUND: 0,
            }
            for i in ids
        ]
    if kind is TableKind.LABELS:
        rows = []
        for i in ids:
            row = {
                col.LABEL_ID: f"l{i}",
                col.VIDEO_ID: f"c{i}",
                col.VIDEO_PATH: f"videos/c{i}.mp4",
                col.PROMPT: "A small red circle moves left.",
                col.DIMENSION: "motion_smoothness",
                col.REASON: "It glides.",
                **_ZERO_VOTES,
                col.SOURCE: "critic",
                col.CRITIC_VERSION: "v0",
            }
            if i % 2:
                row |= {
                    col.KIND: "pairwise",
                    col.VIDEO_ID_B: f"d{i}",
                    col.VIDEO_PATH_B: f"videos/d{i}.mp4",
                    col.VERDICT: "tie",
                    col.VOTES_TIE: 2,
                    col.VOTES_A: 1,
                    col.CERTAINTY: 2 / 3,
                }
            else:
                row |= {col.KIND: "pointwise", col.VERDICT: "Good", col.VOTES_GOOD: 3, col.CERTAINTY: 1.0}
            rows.append(row)
        return rows
    if kind is TableKind.PAIRS:
        return [
            {
                col.PAIR_ID: f"pair{i}",
                col.PROMPT_ID: f"p{i}",
                col.PROMPT: "A circle.",
                col.WINNER_CANDIDATE_ID: f"c{i}a",
                col.LOSER_CANDIDATE_ID: f"c{i}b",
                col.WINNER_LATENT_PATH: f"latents/c{i}a.pt",
                col.LOSER_LATENT_PATH: f"latents/c{i}b.pt",
                col.WINNER_REWARD: 0.9,
                col.LOSER_REWARD: 0.05,
                col.ROUND: 1,
            }
            for i in ids
        ]
    if kind is TableKind.SAMPLES:
        return [
            {
                col.CANDIDATE_ID: f"c{i}",
                col.PROMPT_ID: f"p{i // 2}",
                col.PROMPT: "A circle.",
                col.LATENT_PATH: f"latents/c{i}.safetensors",
                col.PROMPT_EMBEDS_PATH: f"prompt_embeds/p{i // 2}.safetensors",
                col.REWARD: 0.38,
                col.DESIRABLE: i % 2 == 0,
                col.PASSES: i % 3 == 0,
                col.ROUND: 1,
            }
            for i in ids
        ]
    if kind is TableKind.CRITIC_ANSWERS:
        return [
            {
                col.ANSWER_ID: f"l{i // 2}__{i % 2}",
                col.LABEL_ID: f"l{i // 2}",
                col.SAMPLE_INDEX: i % 2,
                col.ANSWER_TEXT: "Good. It glides." if i % 3 else "Goo",
                col.ANSWER_VERDICT: "Good" if i % 3 else None,
            }
            for i in ids
        ]
    return [
        {
            col.VIDEO_ID: f"r{i}",
            col.VIDEO_PATH: f"real/r{i}.mp4",
            col.CAPTION: "A ball rolls.",
            col.LATENT_PATH: None,
        }
        for i in ids
    ]


@pytest.fixture
def sample_rows() -> Callable[..., list[dict[str, Any]]]:
    """`sample_rows(kind, n=4, start=0)`: valid rows of `kind` with ids numbered from `start`."""

    def make(kind: TableKind | str, n: int = 4, start: int = 0) -> list[dict[str, Any]]:
        return _rows(TableKind(kind), n, start)

    return make
