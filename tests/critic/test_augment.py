"""More training questions from existing labels: mirrored pairs and describe-first thinking."""

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ipo_ray.critic.augment import (
    mirrored,
    self_descriptions,
    thinking_text,
    with_descriptions,
    with_mirrored_pairs,
)
from ipo_ray.critic.checkpoint import read_manifest
from ipo_ray.critic.evaluate import first_token_verdicts
from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import SamplingConfig
from ipo_ray.critic.model import load_critic
from ipo_ray.critic.parity import verdict_ids_after_marker
from ipo_ray.critic.parse import parse_answer
from ipo_ray.critic.sft import FrameCache, SftExample, encode
from ipo_ray.critic.templates import ANSWER_MARKER
from ipo_ray.critic.train_loop import TrainPlan, train_critic

NUM_FRAMES = 16

PAIR = SftExample(
    "pair-1/faithfulness",
    "pairwise",
    "faithfulness",
    ("a.mp4", "b.mp4"),
    "a red circle",
    "A",
    "Video A is better: in video B, the circle is blurred. Video Abc stays.",
)
DESCRIBED = {"a.mp4": "A small red circle.", "b.mp4": "A blurred red circle."}


def test_a_mirrored_pair_swaps_videos_preference_and_the_reasons_letters() -> None:
    flipped = mirrored(PAIR)
    assert flipped.video_paths == ("b.mp4", "a.mp4") and flipped.verdict == "B"
    assert flipped.reason == "Video B is better: in video A, the circle is blurred. Video Abc stays."
    assert flipped.label_id == "mirror:pair-1/faithfulness" and flipped.caption == PAIR.caption
    twice = mirrored(flipped)
    assert (twice.video_paths, twice.verdict, twice.reason) == (PAIR.video_paths, PAIR.verdict, PAIR.reason)
    tie = replace(PAIR, verdict="tie", reason="The two clips are alike here.")
    assert mirrored(tie).verdict == "tie" and mirrored(tie).reason == tie.reason
    point = replace(PAIR, kind="pointwise", video_paths=("a.mp4",), verdict="Good")
    with pytest.raises(ValueError, match="only pairwise"):
        mirrored(point)
    assert with_mirrored_pairs([point, PAIR]) == [point, PAIR, flipped]


def test_describe_first_thinking_names_each_video_and_survives_mirroring() -> None:
    point = replace(PAIR, kind="pointwise", video_paths=("b.mp4",), verdict="Bad")
    assert thinking_text(point, DESCRIBED) == "The video shows: A blurred red circle."
    described_pair, described_point = with_descriptions([PAIR, point], DESCRIBED)
    assert described_pair.thinking == (
        "Video A shows: A small red circle.\nVideo B shows: A blurred red circle."
    )
    # Mirrored, video A is the blurred one: the thinking keeps A first and follows the videos.
    assert mirrored(described_pair).thinking == (
        "Video A shows: A blurred red circle.\nVideo B shows: A small red circle."
    )
    # The question asks for chain-of-thought, and the answer parses back under it.
    for example in (described_pair, described_point):
        assert example.asks_cot and ANSWER_MARKER in example.question()
        parsed = parse_answer(example.answer(), example.kind, cot=True)
        assert parsed.verdict == example.verdict and parsed.thinking == example.thinking
    assert not PAIR.asks_cot and ANSWER_MARKER not in PAIR.answer()
    with pytest.raises(KeyError):
        with_descriptions([replace(PAIR, video_paths=("a.mp4", "c.mp4"))], DESCRIBED)


def test_the_verdict_after_the_thinking_is_read_where_training_puts_it(
    examples: list[SftExample], init_dir: Path
) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    tokenizer = processor.tokenizer
    described = with_descriptions(examples, {p: "A red circle." for e in examples for p in e.video_paths})
    for example in (described[0], next(e for e in described if e.kind == "pairwise")):
        videos = [frames(p) for p in example.video_paths]
        full = encode(processor, example, videos)
        thinking = f"{example.thinking}\n{ANSWER_MARKER}"
        prefix = encode(processor, example, videos, with_answer=False, prefix=thinking)
        n = len(prefix.input_ids)
        # The evaluation's prompt + thinking is exactly the start of the training sequence, and the
        # next training token is the verdict's token after the marker.
        assert torch.equal(full.input_ids[:n], prefix.input_ids)
        assert int(full.input_ids[n]) == verdict_ids_after_marker(tokenizer, example.kind)[example.verdict]
    verdicts = first_token_verdicts(model, processor, described[:6], frames)
    assert len(verdicts) == 6 and all(v in ("Good", "Normal", "Bad", "A", "B", "tie") for v in verdicts)


def test_describe_first_training_uses_the_critics_own_descriptions(
    init_dir: Path, tmp_path: Path, examples: list[SftExample], small_plan: Callable[..., TrainPlan]
) -> None:
    backend = TransformersBackend(init_dir, SamplingConfig(temperature=0.0, max_new_tokens=6))
    videos = [p for e in examples for p in e.video_paths]
    described = self_descriptions(backend, videos, FrameCache(NUM_FRAMES), batch_size=7)
    assert sorted(described) == sorted(set(videos)) and all(isinstance(t, str) for t in described.values())
    path = tmp_path / "descriptions.json"
    path.write_text(json.dumps(described))
    plan = small_plan(lr=3e-3, descriptions_path=str(path))
    metrics = train_critic(plan)
    assert metrics["train/step"] == 4 and "critic/labels/pointwise/mean" in metrics
    assert read_manifest(plan.out_dir)["training"]["descriptions_path"] == str(path)
