"""Judge first, then compare: pairwise questions trained after the critic's own pointwise verdicts."""

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import AutoProcessor, AutoTokenizer

from ipo_ray.critic.augment import mirrored
from ipo_ray.critic.checkpoint import read_manifest
from ipo_ray.critic.evaluate import first_token_probabilities
from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import CriticRequest
from ipo_ray.critic.judge_first import (
    judge_first_verdicts,
    own_verdicts,
    parse_verdict_thinking,
    pointwise_twins,
    verdict_thinking,
    with_own_verdicts,
)
from ipo_ray.critic.model import critic_judges_first, load_critic
from ipo_ray.critic.parse import parse_answer
from ipo_ray.critic.sft import FrameCache, SftExample, encode
from ipo_ray.critic.templates import answer_prefix, pairwise_question
from ipo_ray.critic.tokenizer import PAIRWISE_READ_KEY, judges_first, set_judges_first
from ipo_ray.critic.train_loop import TrainPlan, train_critic

PAIR = SftExample(
    "pair-1/semantic_consistency",
    "pairwise",
    "semantic_consistency",
    ("a.mp4", "b.mp4"),
    "a red circle",
    "B",
    "Video B is better: in video A, the circle is blue.",
)


def test_the_thinking_names_each_videos_verdict_and_survives_mirroring() -> None:
    thinking = verdict_thinking("Bad", "Good")
    assert thinking == "Video A: Bad.\nVideo B: Good."
    assert parse_verdict_thinking(thinking) == ("Bad", "Good")
    assert parse_verdict_thinking("Video A shows: a circle.\nVideo B shows: a square.") is None
    point = replace(PAIR, kind="pointwise", video_paths=("a.mp4",), verdict="Bad")
    judged_pair, same_point = with_own_verdicts([PAIR, point], {PAIR.label_id: thinking})
    assert same_point == point  # pointwise questions stay direct
    assert judged_pair.thinking == thinking and judged_pair.asks_cot
    parsed = parse_answer(judged_pair.answer(), "pairwise", cot=True)
    assert parsed.verdict == "B" and parsed.thinking == thinking
    # Mirrored, video A is the Good one: the lines keep A first and follow the videos.
    flipped = mirrored(judged_pair)
    assert flipped.verdict == "A" and parse_verdict_thinking(flipped.thinking) == ("Good", "Bad")
    with pytest.raises(KeyError):
        with_own_verdicts([replace(PAIR, label_id="pair-2/semantic_consistency")], {PAIR.label_id: thinking})


def test_pointwise_twins_ask_each_video_the_pairs_dimension() -> None:
    a, b = pointwise_twins(PAIR)
    assert (a.kind, a.video_paths, b.video_paths) == ("pointwise", ("a.mp4",), ("b.mp4",))
    assert a.dimension == b.dimension == PAIR.dimension and a.caption == PAIR.caption
    assert not a.asks_cot and "Video" not in a.question()
    with pytest.raises(ValueError, match="only pairwise"):
        pointwise_twins(a)


def test_own_verdicts_are_the_critics_most_likely_pointwise_answers(
    examples: list[SftExample], init_dir: Path
) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(16)
    thinking = own_verdicts(model, processor, examples, frames, batch_size=5)
    pairs = [e for e in examples if e.kind == "pairwise"]
    assert pairs and sorted(thinking) == sorted(e.label_id for e in pairs)
    pair = pairs[0]
    probs = first_token_probabilities(model, processor, list(pointwise_twins(pair)), frames)
    expected = tuple(max(p, key=p.__getitem__) for p in probs)
    assert parse_verdict_thinking(thinking[pair.label_id]) == expected


def test_the_judge_first_read_averages_both_orders_after_the_own_verdicts(
    examples: list[SftExample], init_dir: Path
) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(16)
    read = judge_first_verdicts(model, processor, examples, frames)
    assert len(read) == len(examples)
    thinking = own_verdicts(model, processor, examples, frames)
    for i, e in enumerate(examples):
        if e.kind == "pointwise":
            p = first_token_probabilities(model, processor, [e], frames)[0]
            assert read[i] == max(p, key=p.__getitem__)
            continue
        judged = replace(e, thinking=thinking[e.label_id])
        flipped = mirrored(judged)
        given, swapped = first_token_probabilities(model, processor, [judged, flipped], frames)
        # The swapped question's lines follow its own videos: its A is our B.
        assert parse_verdict_thinking(flipped.thinking) == parse_verdict_thinking(judged.thinking)[::-1]
        pooled = {v: given[v] + swapped[{"A": "B", "B": "A", "tie": "tie"}[v]] for v in given}
        assert read[i] == max(pooled, key=pooled.__getitem__)


def test_judge_first_training_reads_pairs_after_the_given_verdicts(
    examples: list[SftExample], init_dir: Path, tmp_path: Path, small_plan: Callable[..., TrainPlan]
) -> None:
    model, processor = load_critic(init_dir)
    thinking = own_verdicts(model, processor, examples, FrameCache(16))
    path = tmp_path / "pair_thinking.json"
    path.write_text(json.dumps(thinking))
    plan = small_plan(lr=3e-3, pair_thinking_path=str(path), held_out=0.5)  # held-out pairs too
    metrics = train_critic(plan)
    assert metrics["train/step"] == 4 and "critic/labels/pairwise/all" in metrics
    assert read_manifest(plan.out_dir)["training"]["pair_thinking_path"] == str(path)


def test_a_served_judge_first_prompt_is_the_one_trained_on(
    examples: list[SftExample], init_dir: Path
) -> None:
    """The backends' prompt with a given answer start tokenises exactly as training's prompt + answer
    up to the verdict, so the served read continues where the trained answer does."""
    backend = TransformersBackend(init_dir)
    frames = FrameCache(16)
    pair = next(e for e in examples if e.kind == "pairwise")
    judged = replace(pair, thinking=verdict_thinking("Bad", "Good"))
    videos = tuple(frames(p) for p in judged.video_paths)
    prefix = answer_prefix(judged.thinking)
    request = CriticRequest(videos, pairwise_question(judged.caption, judged.dimension, True), prefix)
    served = backend.inputs(request)["input_ids"][0]
    trained = encode(backend.processor, judged, list(videos)).input_ids  # prompt + whole answer
    read = encode(backend.processor, judged, list(videos), with_answer=False, prefix=prefix).input_ids
    assert served.tolist() == trained[: len(served)].tolist() == read.tolist()
    decoded = backend.processor.tokenizer.decode(trained[len(served) :], skip_special_tokens=True)
    assert prefix + decoded == judged.answer()  # the rest of the trained answer starts at the verdict


def test_a_critic_declares_its_pairwise_read_in_its_tokenizer(init_dir: Path, tmp_path: Path) -> None:
    assert not critic_judges_first(init_dir)  # without the key: direct, like any Qwen2-VL
    folder = tmp_path / "judge-first"
    shutil.copytree(init_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    set_judges_first(tokenizer, True)
    tokenizer.save_pretrained(folder)
    assert critic_judges_first(folder) and judges_first(AutoProcessor.from_pretrained(folder).tokenizer)
    tokenizer.init_kwargs[PAIRWISE_READ_KEY] = "sideways"
    with pytest.raises(ValueError, match="sideways"):
        judges_first(tokenizer)
