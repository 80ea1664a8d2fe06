"""Judge first, then compare: pairwise questions answered after the critic's own pointwise verdicts.

Measured on world-v5 (ipo_ray/assets/world_critic/README.md): on fresh render pairs whose two clips
differ widely in semantic consistency (one clip Bad, the other Good, by the oracle), its pointwise
question finds the worse clip Bad in most pairs, yet its pairwise answer to the same pair is a tie
or the wrong side in 40% of them. Two small language-model layers do not compare two videos with a
caption inside one forward pass; they do judge one. Written out as chain-of-thought before the
preference ("Video A: Good.\\nVideo B: Bad."), the two verdicts sit next to the answer, and what is
left to learn is when they decide it and when the videos must.

The verdicts are the critic's own most likely first pointwise verdict tokens, not annotations, so
the method needs no labels beyond the pairwise ones. `judge_first_verdicts` is the read-out such a
critic is measured with: its own verdicts first, then the preference after them, asked in both
video orders and averaged. (Written by the critic itself, in the pair's context, the verdicts are
worse than asked one video at a time, and so are the preferences after them.)

A critic trained so declares it in its tokenizer config (`tokenizer.judges_first`), and is served so:
POST /v1/compare and `judge.compare` read each video's pointwise verdicts, then give them as the
start of the pairwise answer (`judge.judged_pair_requests`): with ``critic.vote=first_token`` (the
default) this module's read exactly, verdicts and preference from the first token; with
``critic.vote=samples`` the n sampled answers voted instead.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
from transformers import Qwen2VLForConditionalGeneration, Qwen2VLProcessor

from ipo_ray.critic.evaluate import both_orders_verdicts, first_token_probabilities
from ipo_ray.critic.sft import SftExample
from ipo_ray.critic.templates import verdict_thinking

__all__ = [
    "judge_first_verdicts",
    "own_verdicts",
    "parse_verdict_thinking",
    "pointwise_twins",
    "verdict_thinking",
    "with_own_verdicts",
]

_THINKING = re.compile(r"Video A: (Good|Normal|Bad)\.\nVideo B: (Good|Normal|Bad)\.")


def parse_verdict_thinking(thinking: str) -> tuple[str, str] | None:
    """(verdict of A, verdict of B) from `verdict_thinking`'s text; None for any other text."""
    m = _THINKING.fullmatch(thinking.strip())
    return (m[1], m[2]) if m else None


def pointwise_twins(example: SftExample) -> tuple[SftExample, SftExample]:
    """The pointwise questions about each video of a pairwise example (its caption and dimension).

    Raises:
        ValueError: `example` is not pairwise.
    """
    if example.kind != "pairwise":
        raise ValueError(f"only pairwise examples have two videos, got {example.kind!r} ({example.label_id})")
    plain = replace(example, kind="pointwise", verdict="Good", reason="", cot=False, thinking="")
    a, b = (replace(plain, video_paths=(p,)) for p in example.video_paths)
    return a, b


def own_verdicts(
    model: Qwen2VLForConditionalGeneration,
    processor: Qwen2VLProcessor,
    examples: Sequence[SftExample],
    frames: Callable[[str], np.ndarray],
    batch_size: int = 32,
) -> dict[str, str]:
    """Judge-first thinking for every pairwise example: label id → `verdict_thinking`.

    Each distinct (video, caption, dimension) is asked once; its verdict is the model's most likely
    first pointwise verdict token (`evaluate.first_token_probabilities`).
    """
    pairs = [e for e in examples if e.kind == "pairwise"]
    questions: dict[tuple[str, str, str], SftExample] = {}
    for e in pairs:
        for twin in pointwise_twins(e):
            questions.setdefault((twin.video_paths[0], twin.caption, twin.dimension), twin)
    keys = list(questions)
    probs = first_token_probabilities(model, processor, [questions[k] for k in keys], frames, batch_size)
    verdict = {k: max(p, key=p.__getitem__) for k, p in zip(keys, probs, strict=True)}
    return {
        e.label_id: verdict_thinking(*(verdict[(p, e.caption, e.dimension)] for p in e.video_paths))
        for e in pairs
    }


def with_own_verdicts(examples: Sequence[SftExample], thinking: Mapping[str, str]) -> list[SftExample]:
    """`examples` with judge-first thinking on every pairwise question; other questions unchanged.

    Raises:
        KeyError: a pairwise example has no thinking in `thinking`.
    """
    return [replace(e, thinking=thinking[e.label_id]) if e.kind == "pairwise" else e for e in examples]


def judge_first_verdicts(
    model: Qwen2VLForConditionalGeneration,
    processor: Qwen2VLProcessor,
    examples: Sequence[SftExample],
    frames: Callable[[str], np.ndarray],
    batch_size: int = 32,
) -> list[str]:
    """Each question's verdict, read judge-first: pointwise questions by their most likely first
    verdict token; each pairwise question after the critic's own pointwise verdicts on its two videos
    (`own_verdicts`), its preference's first-token probabilities averaged over both video orders
    (`evaluate.both_orders_verdicts`; the mirrored question's verdict lines follow its videos)."""
    thinking = own_verdicts(model, processor, examples, frames, batch_size)
    judged = with_own_verdicts(examples, thinking)
    return both_orders_verdicts(model, processor, judged, frames, batch_size)
