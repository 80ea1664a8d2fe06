"""More training questions from the labels a critic already has: mirrored pairs and describe-first.

- `mirrored` / `with_mirrored_pairs`: each pairwise label asked again with the videos in the
  other order, so a critic cannot learn a preference for a position.
- `self_descriptions` / `with_descriptions` (describe-first): every question is trained with the
  critic's own description of its video(s) as chain-of-thought before the verdict. The world
  critic names a clip's colour well when asked to describe it (99% of clips whose colour is the
  asked one, 8 of 11 whose colour is not), yet misses most colour and shape mismatches when asked
  whether the clip matches its caption: two layers do not compare what they see with the caption
  inside one forward pass. Written out first, the description puts the seen colour next to the
  caption's. The descriptions are the critic's own greedy answers to the describe question, not
  annotations, so the method applies to any labels table; the served critic then answers with
  ``critic.chain_of_thought: true``. Measured on the world critic over 2,000 steps it did not lift
  pairwise agreement (ipo_ray/assets/world_critic/README.md); it stays an option, off by default.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from ipo_ray.critic.judge import CriticBackend, CriticRequest
from ipo_ray.critic.sft import SftExample
from ipo_ray.critic.templates import DESCRIBE_QUESTION

# Greedy answer length for a describe-first critic's answers: two descriptions (about 30 tokens
# each for the world critic), the Answer: line and a reason.
DESCRIBE_FIRST_TOKENS = 160

_MIRROR_PREFERENCE = {"A": "B", "B": "A", "tie": "tie"}
_VIDEO_LETTER = re.compile(r"\b([Vv]ideo) ([AB])\b")
# Thinking that speaks of each video in turn: describe-first ("Video A shows: ...") and judge-first
# ("Video A: Good.", critic/judge_first.py).
_PAIR_THINKING = re.compile(r"Video A( shows)?: (.*)\nVideo B( shows)?: (.*)", re.DOTALL)


def mirrored(example: SftExample) -> SftExample:
    """The same pairwise judgement asked with the videos in the other order.

    Videos swap places, the preference swaps (A ↔ B, a tie stays a tie) and so do the letters the
    reason names ("in video B, ..." → "in video A, ..."). A pairwise critic trained on one order
    only can learn the order itself: world-v2 answered B more often than A (mean probability
    0.33 vs 0.27) on pairs where the oracle was even.

    Raises:
        ValueError: `example` is not pairwise.
    """
    if example.kind != "pairwise":
        raise ValueError(f"only pairwise examples can be mirrored, got {example.kind!r} ({example.label_id})")
    return replace(
        example,
        label_id=f"mirror:{example.label_id}",
        video_paths=example.video_paths[::-1],
        verdict=_MIRROR_PREFERENCE[example.verdict],
        reason=_swap_letters(example.reason),
        thinking=_mirrored_thinking(example.thinking),
    )


def _swap_letters(text: str) -> str:
    return _VIDEO_LETTER.sub(lambda m: f"{m[1]} {'B' if m[2] == 'A' else 'A'}", text)


def _mirrored_thinking(thinking: str) -> str:
    """Describe-first and judge-first thinking keep their A-then-B order (what each video shows or
    its verdict swaps places); other thinking only swaps the letters."""
    each = _PAIR_THINKING.fullmatch(thinking)
    if each is None:
        return _swap_letters(thinking)
    return f"Video A{each[3] or ''}: {each[4]}\nVideo B{each[1] or ''}: {each[2]}"


def with_mirrored_pairs(examples: Sequence[SftExample]) -> list[SftExample]:
    """`examples` followed by the mirror (`mirrored`) of each pairwise one (training split only)."""
    return [*examples, *(mirrored(e) for e in examples if e.kind == "pairwise")]


def self_descriptions(
    backend: CriticBackend, paths: Sequence[str], frames: Callable[[str], np.ndarray], batch_size: int = 256
) -> dict[str, str]:
    """The backend's answer to the describe question for each distinct video path.

    Args:
        backend: A critic decoding greedily (``SamplingConfig(temperature=0)``), long enough for a
            caption (~64 new tokens for the world critic).
        paths: Video paths (repeats are described once).
        frames: Path → uint8 (T, H, W, 3), e.g. `sft.FrameCache`.
        batch_size: Videos per `generate` call (bounds the frames held at once).

    Returns:
        Path → description, stripped.
    """
    unique = list(dict.fromkeys(paths))
    out: dict[str, str] = {}
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        texts = backend.generate([CriticRequest((frames(p),), DESCRIBE_QUESTION) for p in chunk], 1)
        out.update((p, t[0].strip()) for p, t in zip(chunk, texts, strict=True))
    return out


def thinking_text(example: SftExample, descriptions: Mapping[str, str]) -> str:
    """The chain-of-thought of a describe-first answer: what each video shows, in question order.

    Raises:
        KeyError: a video of `example` has no description.
    """
    if example.kind == "pairwise":
        a, b = example.video_paths
        return f"Video A shows: {descriptions[a]}\nVideo B shows: {descriptions[b]}"
    return f"The video shows: {descriptions[example.video_paths[0]]}"


def with_descriptions(examples: Sequence[SftExample], descriptions: Mapping[str, str]) -> list[SftExample]:
    """`examples` with describe-first thinking on every pointwise and pairwise question.

    Describe examples stay as they are (their answer already is a description).

    Raises:
        KeyError: a judged video has no description.
    """
    return [
        replace(e, thinking=thinking_text(e, descriptions)) if e.kind in ("pointwise", "pairwise") else e
        for e in examples
    ]
