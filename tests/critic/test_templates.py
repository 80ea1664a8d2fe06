"""Question templates and the chat rendering both engines share."""

import pytest

from ipo_ray.critic.templates import (
    DESCRIBE_QUESTION,
    format_answer,
    messages,
    pairwise_question,
    pointwise_question,
)
from ipo_ray.vocab import DIMENSIONS


@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_questions_name_caption_and_answers(dimension: str) -> None:
    point = pointwise_question("A red circle moves left.", dimension)  # type: ignore[arg-type]
    pair = pairwise_question("A red circle moves left.", dimension)  # type: ignore[arg-type]
    assert '"A red circle moves left."' in point and "Good, Normal or Bad" in point
    assert "A, B or Tie" in pair
    assert "Answer:" not in point
    assert "'Answer:'" in pointwise_question("x", dimension, cot=True)  # type: ignore[arg-type]


def test_questions_differ_per_dimension() -> None:
    assert len({pointwise_question("x", d) for d in DIMENSIONS}) == len(DIMENSIONS)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown dimension"):
        pointwise_question("x", "aesthetics")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="caption is empty"):
        pairwise_question("  ", "faithfulness")
    with pytest.raises(ValueError, match="num_videos"):
        messages("q", 3)
    with pytest.raises(ValueError, match="pointwise verdict"):
        format_answer("pointwise", "A", "r")


def test_pairwise_messages_label_videos_in_order() -> None:
    content = messages("q", 2)[0]["content"]
    assert [p["type"] for p in content] == ["text", "video", "text", "video", "text"]
    assert content[0]["text"] == "Video A:" and content[2]["text"] == "Video B:"


@pytest.mark.parametrize("num_videos", [1, 2])
def test_caption_first_moves_only_the_caption_line_before_the_videos(num_videos: int) -> None:
    question = pairwise_question("A red circle moves left.", "semantic_consistency")
    plain = messages(question, num_videos)[0]["content"]
    first = messages(question, num_videos, caption_first=True)[0]["content"]
    assert plain[-1]["text"] == question and plain[0] != first[0]
    assert first[0] == {"type": "text", "text": 'Caption: "A red circle moves left."\n'}
    assert first[1:-1] == plain[:-1]  # the videos (and their A/B labels) in the same order
    assert first[0]["text"] + first[-1]["text"] == question  # nothing lost or added
    # A question without a caption line (the describe task) keeps the usual layout.
    assert messages(DESCRIBE_QUESTION, 1, caption_first=True) == messages(DESCRIBE_QUESTION, 1)


def test_answer_formats() -> None:
    assert format_answer("pointwise", "Good", "Smooth.") == "Good. Smooth."
    assert format_answer("pairwise", "tie", "") == "Tie."
    assert (
        format_answer("pointwise", "Bad", "Jitter.", thinking="It jumps.")
        == "It jumps.\nAnswer: Bad. Jitter."
    )
