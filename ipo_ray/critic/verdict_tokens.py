"""Where a verdict starts in the critic's vocabulary: the token ids its answers begin with, and the
verdict distribution read from the log-probabilities at that position.

Shared by the first-token read of evaluation (`evaluate.first_token_probabilities`), of serving
(`judge.first_token_reads`, ``critic.vote=first_token``) and by the engine parity check. Tokenizer
only: no model, no engine.
"""

import math
from collections.abc import Mapping
from typing import Any

from ipo_ray.critic.templates import ANSWER_MARKER, PREFERENCE_WORDS, Kind
from ipo_ray.vocab import VERDICTS


def _words(kind: Kind) -> dict[str, str]:
    return {v: v for v in VERDICTS} if kind == "pointwise" else PREFERENCE_WORDS


def verdict_token_ids(tokenizer: Any, kind: Kind) -> dict[str, int]:  # noqa: ANN401 - any HF tokenizer
    """Verdict → the id of the first token an answer with that verdict starts with.

    Raises:
        ValueError: two verdicts share a first token (their log-probs could not be told apart).
    """
    ids = {
        verdict: tokenizer.encode(word + ".", add_special_tokens=False)[0]
        for verdict, word in _words(kind).items()
    }
    if len(set(ids.values())) != len(ids):
        raise ValueError(
            f"verdicts share a first token: {ids}; retrain the tokenizer with the template corpus"
        )
    return ids


def verdict_ids_after_marker(tokenizer: Any, kind: Kind) -> dict[str, int]:  # noqa: ANN401
    """Verdict → the id of its first token where it follows the ``Answer:`` marker of a
    chain-of-thought answer (``"Answer: Good."``: usually a space-led token, not `verdict_token_ids`').

    Raises:
        ValueError: two verdicts share that token, or the marker's tokens change with what follows.
    """
    marker = tokenizer.encode(ANSWER_MARKER, add_special_tokens=False)
    ids = {}
    for verdict, word in _words(kind).items():
        tokens = tokenizer.encode(f"{ANSWER_MARKER} {word}.", add_special_tokens=False)
        if tokens[: len(marker)] != marker:
            raise ValueError(f"{ANSWER_MARKER!r} tokenises differently before {word!r}: {tokens}")
        ids[verdict] = tokens[len(marker)]
    if len(set(ids.values())) != len(ids):
        raise ValueError(f"verdicts share a first token after {ANSWER_MARKER!r}: {ids}")
    return ids


def answer_start_ids(
    tokenizer: Any,  # noqa: ANN401 - any HF tokenizer
    kind: Kind,
    cot: bool,
    answer_prefix: str = "",
) -> dict[str, int] | None:
    """The verdict token ids at the first token the model writes, or None where the verdict does
    not come first.

    A direct answer starts with its verdict; an answer whose given start ends with the ``Answer:``
    marker (a judge-first critic's pairwise answers) continues with it; an answer that must think
    first (``cot`` without such a start) does not.
    """
    if answer_prefix:
        return verdict_ids_after_marker(tokenizer, kind) if answer_prefix.endswith(ANSWER_MARKER) else None
    return None if cot else verdict_token_ids(tokenizer, kind)


def verdict_distribution(logprobs: Mapping[int, float], ids: Mapping[str, int]) -> dict[str, float]:
    """Each verdict → its first token's probability, renormalised over the verdicts.

    Args:
        logprobs: Token id → log-probability at the answer's first token; the engine's most likely
            tokens only (a verdict missing from them counts as probability 0).
        ids: From `answer_start_ids`.

    Returns:
        Probabilities summing to 1; {} when none of the verdicts' tokens is in `logprobs`.
    """
    found = {v: logprobs[i] for v, i in ids.items() if i in logprobs and math.isfinite(logprobs[i])}
    if not found:
        return {}
    top = max(found.values())
    weights = {v: math.exp(lp - top) for v, lp in found.items()}
    total = sum(weights.values())
    return {v: weights.get(v, 0.0) / total for v in ids}
