"""The first-token read (``critic.vote=first_token``): verdict ids, distributions, the vote over
them, and `judge.score`/`compare` asking for them, on backends whose answers follow a rule."""

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
from transformers import AutoTokenizer

from ipo_ray.config import load_config
from ipo_ray.critic import judge
from ipo_ray.critic.judge import CriticRequest, Sampled, from_swapped_order
from ipo_ray.critic.parse import parse_answer
from ipo_ray.critic.serve.responses import compare_response, score_response
from ipo_ray.critic.serve.settings import server_settings
from ipo_ray.critic.serve.versions import resolve_critic_path
from ipo_ray.critic.verdict_tokens import (
    answer_start_ids,
    verdict_distribution,
    verdict_ids_after_marker,
    verdict_token_ids,
)
from ipo_ray.critic.voting import vote

TOKENIZER = AutoTokenizer.from_pretrained(resolve_critic_path(None))
POINT = verdict_token_ids(TOKENIZER, "pointwise")
PAIR = verdict_token_ids(TOKENIZER, "pairwise")
PAIR_AFTER = verdict_ids_after_marker(TOKENIZER, "pairwise")


def _clip(brightness: int) -> np.ndarray:
    return np.full((4, 8, 8, 3), brightness, dtype=np.uint8)


def _logprobs(probs: dict[int, float], other: float = 0.0) -> dict[int, float]:
    """Log-probs of the given tokens, plus one non-verdict token holding `other` of the mass."""
    out = {token: math.log(p) for token, p in probs.items()}
    if other:
        out[1] = math.log(other)
    return out


def test_answer_start_ids_say_where_the_verdict_comes_first() -> None:
    assert answer_start_ids(TOKENIZER, "pointwise", cot=False) == POINT
    assert answer_start_ids(TOKENIZER, "pointwise", cot=True) is None  # it thinks first
    prefix = "Video A: Bad.\nVideo B: Good.\nAnswer:"
    assert answer_start_ids(TOKENIZER, "pairwise", cot=True, answer_prefix=prefix) == PAIR_AFTER
    assert PAIR_AFTER != PAIR  # a space-led token after the marker
    assert answer_start_ids(TOKENIZER, "pairwise", cot=True, answer_prefix="Video A: Bad.") is None


def test_verdict_distribution_renormalises_over_the_verdicts() -> None:
    logprobs = _logprobs({POINT["Good"]: 0.3, POINT["Bad"]: 0.1}, other=0.6)
    got = verdict_distribution(logprobs, POINT)
    assert got == pytest.approx({"Good": 0.75, "Normal": 0.0, "Bad": 0.25})  # Normal not in the top
    assert verdict_distribution({7: -0.1}, POINT) == {}  # no verdict token among the top
    assert verdict_distribution(
        {POINT["Good"]: -1e4, POINT["Bad"]: -1e4 - math.log(3)}, POINT
    ) == pytest.approx(
        {"Good": 0.75, "Normal": 0.0, "Bad": 0.25}  # no underflow far from 0
    )


def _read(text: str, first: dict[str, float] | None, kind: str = "pointwise"):  # noqa: ANN202
    return replace(parse_answer(text, kind), first_token=first)  # type: ignore[arg-type]


def test_vote_reads_the_most_likely_first_token_and_keeps_the_sampled_counts() -> None:
    first = {"Good": 0.55, "Normal": 0.05, "Bad": 0.4}
    answers = [_read(t, first) for t in ("Bad. dark", "Good. bright", "Bad. dim", "Good. lit")]
    result = vote(answers, "pointwise")
    assert (result.verdict, result.read) == ("Good", "first_token")
    assert result.certainty == pytest.approx(0.55) and result.probabilities == pytest.approx(first)
    assert result.votes == {"Good": 2, "Normal": 0, "Bad": 2}  # a split vote: samples alone say nothing
    assert result.reason == "bright"  # the first sample that agrees
    assert vote([replace(a, first_token=None) for a in answers], "pointwise").verdict is None


def test_first_token_vote_without_a_verdict_token_or_with_a_tie_has_no_verdict() -> None:
    assert vote([_read("Good. x", {})], "pointwise").verdict is None  # read, nothing found
    tied = vote([_read("A. x", {"A": 0.5, "B": 0.5, "tie": 0.0}, "pairwise")], "pairwise")
    assert tied.verdict is None and tied.certainty == 0.0 and tied.read == "first_token"
    unsupported = vote([_read("Good. x", {"Normal": 0.2, "Bad": 0.3, "Good": 0.5})], "pointwise")
    assert unsupported.verdict == "Good"
    assert vote([_read("Bad. x", {"Good": 0.9, "Normal": 0.05, "Bad": 0.05})], "pointwise").reason == ""
    with pytest.raises(ValueError, match="first-token read"):
        vote([_read("Good. x", {"A": 1.0})], "pointwise")


def test_swapped_answers_carry_a_mirrored_read_and_both_orders_average() -> None:
    given = _read("A. first", {"A": 0.55, "B": 0.45, "tie": 0.0}, "pairwise")
    swapped = from_swapped_order(_read("A. first", {"A": 0.85, "B": 0.15, "tie": 0.0}, "pairwise"))
    assert swapped.first_token == {"B": 0.85, "A": 0.15, "tie": 0.0}
    result = vote([given, swapped], "pairwise")  # position bias cancels: B, not A
    assert result.verdict == "B" and result.certainty == pytest.approx(0.65)


class _Leaning:
    """A first-token backend by rule. Samples split evenly between two verdicts whatever the video;
    the first-token distribution leans: pointwise Good for a bright video (mean > 100), Bad for a
    dark one; pairwise towards the video shown first by a little (position bias), and towards the
    brighter one by more."""

    tokenizer = TOKENIZER

    def __init__(self) -> None:
        self.asked: list[int] = []

    def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        return [s.texts for s in self.sample(requests, n, 0)]

    def sample(self, requests: Sequence[CriticRequest], n: int, top_logprobs: int) -> list[Sampled]:
        self.asked.append(top_logprobs)
        out = []
        for r in requests:
            if len(r.videos) == 1:
                bright = r.videos[0].mean() > 100
                p = {POINT["Good"]: 0.6 if bright else 0.3, POINT["Bad"]: 0.3 if bright else 0.6}
                texts = ["Good. x" if i % 2 else "Bad. y" for i in range(n)]
            else:
                a, b = (float(v.mean()) for v in r.videos)
                lean = 0.55 + (0.3 if a > b else -0.3)  # P(A): position 0.05, brightness 0.3
                ids = PAIR_AFTER if r.answer_prefix else PAIR
                p = {ids["A"]: lean, ids["B"]: 1 - lean}
                texts = [" A. x" if i % 2 else " B. y" for i in range(n)]
            out.append(Sampled(texts, _logprobs(p, other=0.1)))
        return out


def test_score_and_compare_read_the_first_token_when_asked() -> None:
    backend = _Leaning()
    dims = ["faithfulness"]
    sampled = judge.score(backend, [_clip(200)], ["x"], dims, n=4)
    assert backend.asked == [0] and vote(sampled[0]["faithfulness"], "pointwise").verdict is None
    [point] = judge.score(backend, [_clip(200), _clip(10)][:1], ["x"], dims, n=4, read="first_token")
    assert backend.asked[-1] == judge.FIRST_TOKEN_TOP
    body = score_response("default", point)
    assert (
        body.dimensions["faithfulness"].verdict == "Good"
        and body.dimensions["faithfulness"].read == "first_token"
    )
    assert body.dimensions["faithfulness"].certainty == pytest.approx(2 / 3)  # 0.6 / (0.6 + 0.3)
    assert body.dimensions["faithfulness"].votes == {"Good": 2, "Normal": 0, "Bad": 2}

    # Pairs, judge first: each video's verdict from its first token, then the preference's, both orders.
    [pair] = judge.compare(
        backend, [_clip(10)], [_clip(200)], ["x"], dims, 4, judge_first=True, read="first_token"
    )
    got = compare_response("default", pair, None).dimensions["faithfulness"]
    assert got.verdict == "B" and got.read == "first_token" and got.samples == 8
    # Given order P(B) = 1 - 0.25 = 0.75, swapped P(B) = 0.85: over A and B only, mean 0.8.
    assert got.probabilities == pytest.approx({"A": 0.2, "B": 0.8, "tie": 0.0})


def test_a_chain_of_thought_question_is_voted_and_a_plain_backend_is_refused() -> None:
    backend = _Leaning()
    [answers] = judge.score(backend, [_clip(200)], ["x"], ["faithfulness"], n=2, cot=True, read="first_token")
    assert all(a.first_token is None for a in answers["faithfulness"])
    assert vote(answers["faithfulness"], "pointwise").read == "samples"

    class Plain:
        def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
            return [["Good."] * n for _ in requests]

    with pytest.raises(TypeError, match="first-token"):
        judge.score(Plain(), [_clip(1)], ["x"], ["faithfulness"], n=1, read="first_token")


def test_the_app_is_told_how_to_read() -> None:
    assert server_settings(load_config(None, [])).vote == "first_token"
    assert server_settings(load_config(None, ["critic.vote=samples"])).vote == "samples"
    with pytest.raises(ValueError, match="vote"):
        load_config(None, ["critic.vote=majority"])
