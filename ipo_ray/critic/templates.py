"""The critic's questions and answer formats: one place that training, serving and parsing share.

Pointwise (LiFT §3.1–3.2, IPO §3.1): one video and its caption, one question per dimension, answered
``"<Verdict>. <reason>"`` with the verdict Good, Normal or Bad. Pairwise (IPO §3.1): two videos and
a caption, answered ``"<A|B|Tie>. <reason>"``. The reason follows the verdict, as in LiFT's answers:
LiFT Table 2 found reasons worth +6.5 points, and a tiny critic trained on verdicts alone stalled
(../shared/notes/cpu-stack.md).

With chain-of-thought (Dual-IPO SRPO), the model first thinks, then writes the verdict on its own
line after ``Answer:``; `ipo_ray.critic.parse` reads only what follows that marker, so verdict words
in the thinking never count.

The question texts follow LiFT's annotation criteria (semantic consistency, motion smoothness,
video fidelity/faithfulness); the exact wording is ours.
"""

from typing import Any, Final, Literal

from ipo_ray.vocab import DIMENSIONS, PREFERENCES, VERDICTS, Dimension

Kind = Literal["pointwise", "pairwise"]

# How the first line of every pointwise and pairwise question begins.
CAPTION_PREFIX: Final = "Caption:"
# The line-start marker that introduces the verdict after chain-of-thought.
ANSWER_MARKER: Final = "Answer:"
# How a preference is written in answers: "Tie" capitalised like the verdicts, A/B as letters.
PREFERENCE_WORDS: Final[dict[str, str]] = {"A": "A", "B": "B", "tie": "Tie"}

# What each dimension asks, LiFT-style: the criterion named, then what Good and Bad mean.
POINTWISE_QUESTIONS: Final[dict[Dimension, str]] = {
    "semantic_consistency": (
        "How is the semantic consistency between the video and its caption? Good: every object, "
        "colour, action and scene in the caption is shown. Bad: something important is wrong or missing."
    ),
    "motion_smoothness": (
        "How is the motion smoothness of this video? Good: objects move steadily and naturally. "
        "Bad: motion jitters, jumps, stutters or flickers."
    ),
    "faithfulness": (
        "How is the video fidelity? Good: sharp, stable, objects keep their shape and stay visible. "
        "Bad: blur, noise, deformed or vanishing objects."
    ),
}
PAIRWISE_QUESTIONS: Final[dict[Dimension, str]] = {
    "semantic_consistency": "Which video matches the caption better in objects, colours, action and scene?",
    "motion_smoothness": "Which video has smoother, more natural motion, without jitter or flicker?",
    "faithfulness": "Which video has higher fidelity: sharper, more stable, with undeformed objects?",
}

# The describe task (critic training only, `sft.describe_examples`): the caption is not given, so
# the answer can come from the video alone.
DESCRIBE_QUESTION: Final = "Describe the video in one sentence: objects, colours, action and scene."

_POINTWISE_FORMAT = "Answer Good, Normal or Bad, then a short reason."
_PAIRWISE_FORMAT = "Answer A, B or Tie, then a short reason."
_COT_FORMAT = f"Think step by step first, then write '{ANSWER_MARKER}' on a new line followed by the answer."


def _check_dimension(dimension: str) -> None:
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}; use one of {DIMENSIONS}")


def pointwise_question(caption: str, dimension: Dimension, cot: bool = False) -> str:
    """The text of a pointwise question about one video (the video itself goes before it).

    Args:
        caption: The prompt the video was generated from.
        dimension: One of `ipo_ray.vocab.DIMENSIONS`.
        cot: Ask for chain-of-thought before the verdict (Dual-IPO).

    Raises:
        ValueError: unknown dimension or empty caption.
    """
    _check_dimension(dimension)
    if not caption.strip():
        raise ValueError("caption is empty; the critic judges a video against its prompt")
    parts = [f'{CAPTION_PREFIX} "{caption.strip()}"', POINTWISE_QUESTIONS[dimension], _POINTWISE_FORMAT]
    if cot:
        parts.append(_COT_FORMAT)
    return "\n".join(parts)


def pairwise_question(caption: str, dimension: Dimension, cot: bool = False) -> str:
    """The text of a pairwise question about videos A and B (both videos go before it, A first).

    Args:
        caption: The prompt both videos were generated from.
        dimension: One of `ipo_ray.vocab.DIMENSIONS`.
        cot: Ask for chain-of-thought before the preference (Dual-IPO).

    Raises:
        ValueError: unknown dimension or empty caption.
    """
    _check_dimension(dimension)
    if not caption.strip():
        raise ValueError("caption is empty; the critic judges videos against their prompt")
    parts = [f'{CAPTION_PREFIX} "{caption.strip()}"', PAIRWISE_QUESTIONS[dimension], _PAIRWISE_FORMAT]
    if cot:
        parts.append(_COT_FORMAT)
    return "\n".join(parts)


def messages(question: str, num_videos: int, caption_first: bool = False) -> list[dict[str, Any]]:
    """A one-turn chat in the Hugging Face multimodal format: the videos, then the question.

    Pairwise questions label the videos so that "A" and "B" refer to something the model saw.

    Args:
        question: From `pointwise_question` or `pairwise_question`.
        num_videos: 1 (pointwise) or 2 (pairwise: A then B).
        caption_first: Put the question's caption line before the videos (the rest stays after).
            Under causal attention the video tokens can then attend to the caption, so a small
            language model can compare each part of the video with the words it should show
            instead of holding caption and video together at the answer's position (measured on
            the world critic: no difference; its README). A property of the critic, fixed at
            training (`tokenizer.caption_first`); questions without a caption line (the describe
            task) are unchanged.

    Returns:
        ``[{"role": "user", "content": [...]}]`` for ``apply_chat_template``.
    """
    if num_videos == 1:
        content: list[dict[str, Any]] = [{"type": "video"}]
    elif num_videos == 2:
        content = [
            {"type": "text", "text": "Video A:"},
            {"type": "video"},
            {"type": "text", "text": "Video B:"},
            {"type": "video"},
        ]
    else:
        raise ValueError(f"num_videos must be 1 (pointwise) or 2 (pairwise), got {num_videos}")
    head, _, rest = question.partition("\n")
    if caption_first and head.startswith(CAPTION_PREFIX) and rest:
        return [
            {
                "role": "user",
                "content": [{"type": "text", "text": head + "\n"}, *content, {"type": "text", "text": rest}],
            }
        ]
    return [{"role": "user", "content": [*content, {"type": "text", "text": question}]}]


def format_answer(kind: Kind, verdict: str, reason: str, thinking: str | None = None) -> str:
    """The target text for a label: what SFT trains on and what `parse.parse_answer` reads back.

    Args:
        kind: ``"pointwise"`` (verdict in `VERDICTS`) or ``"pairwise"`` (in `PREFERENCES`).
        verdict: The label's verdict, e.g. ``"Good"`` or ``"tie"``.
        reason: One short sentence; may be empty (verdict-only training, LiFT Table 2's ablation).
        thinking: Chain-of-thought text to put before the answer; None for a direct answer.

    Raises:
        ValueError: the verdict does not belong to `kind`.
    """
    allowed = VERDICTS if kind == "pointwise" else PREFERENCES
    if verdict not in allowed:
        raise ValueError(f"{kind} verdict must be one of {allowed}, got {verdict!r}")
    word = verdict if kind == "pointwise" else PREFERENCE_WORDS[verdict]
    answer = f"{word}. {reason.strip()}".rstrip()
    if thinking is None:
        return answer
    return f"{answer_prefix(thinking)} {answer}"


def answer_prefix(thinking: str) -> str:
    """How an answer with chain-of-thought reads up to its verdict: the thinking, then the marker.

    Given to the model as the start of its answer (evaluation reads the verdict token that follows;
    a judge-first critic is served so), it must end exactly where `format_answer`'s text continues.
    """
    return f"{thinking.strip()}\n{ANSWER_MARKER}"


def verdict_thinking(verdict_a: str, verdict_b: str) -> str:
    """The chain-of-thought of a judge-first pairwise answer: each video's pointwise verdict
    (`ipo_ray.critic.judge_first`)."""
    return f"Video A: {verdict_a}.\nVideo B: {verdict_b}."
