"""The training-only verdict probe: targets per judged item, the probe loss in an SFT step, the
vision warm-up (vision tower only, learns, leaves a plain Qwen2-VL)."""

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ipo_ray.critic.attributes import ATTRIBUTES
from ipo_ray.critic.checkpoint import read_manifest
from ipo_ray.critic.model import CriticArchitecture, build_critic, load_critic
from ipo_ray.critic.probe import PAIR_CLASSES, POINT_CLASSES, VerdictProbe, verdict_targets, warm_up_vision
from ipo_ray.critic.sft import FrameCache, SftExample, answer_loss, collate, encode
from ipo_ray.critic.train_loop import TrainPlan, train_critic
from ipo_ray.vocab import DIMENSIONS

NUM_FRAMES = 4


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory: pytest.TempPathFactory, examples: list[SftExample]) -> Path:
    corpus = sorted({e.caption for e in examples} | {e.reason for e in examples})
    arch = CriticArchitecture(patch_size=2, temporal_patch_size=NUM_FRAMES, vision_embed=64, vision_heads=2)
    return build_critic(tmp_path_factory.mktemp("init"), corpus, arch, seed=0)


def test_targets_hold_every_dimension_of_an_item(examples: list[SftExample]) -> None:
    targets = verdict_targets(examples)
    for e in examples:
        classes = POINT_CLASSES if e.kind == "pointwise" else PAIR_CLASSES
        assert targets[e.video_paths][DIMENSIONS.index(e.dimension)] == classes.index(e.verdict)
    assert {len(item) for item in targets} == {1, 2}
    labelled = sum(v != -100 for row in targets.values() for v in row)
    assert labelled == len(examples)  # one label row per (item, dimension), nothing invented


def test_probe_loss_reads_the_videos_of_the_forward(examples: list[SftExample], init_dir: Path) -> None:
    model, processor = load_critic(init_dir)
    probe = VerdictProbe(model)
    frames = FrameCache(NUM_FRAMES)
    rows = [e for e in examples if e.kind == "pointwise"][:3] + [e for e in examples if e.kind == "pairwise"][
        :2
    ]
    batch = collate([encode(processor, e, [frames(p) for p in e.video_paths]) for e in rows], 0, 2)
    answer_loss(model, batch)
    assert probe.video_means().shape == (7, model.config.text_config.hidden_size)  # 3 clips + 2 pairs
    loss = probe.loss(rows)
    assert loss.ndim == 0 and 0 < loss.item() < 10
    loss.backward()
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0  # it trains the vision tower
    with pytest.raises(ValueError, match="videos but the forward saw"):
        probe.loss(rows[:-1])


def test_warm_up_trains_the_vision_tower_only_and_learns(
    examples: list[SftExample], init_dir: Path, tmp_path: Path
) -> None:
    model, processor = load_critic(init_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    frames = FrameCache(NUM_FRAMES)
    logged: list[dict[str, float]] = []
    first = warm_up_vision(model, processor, examples, frames, 1, log=logged.append, lr=3e-3)
    last = warm_up_vision(model, processor, examples, frames, 40, log=logged.append, lr=3e-3, log_every=10)
    assert last < first  # fits the few labels of the tiny seed set
    assert [m["warmup/step"] for m in logged] == [1.0, 10.0, 20.0, 30.0, 40.0]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("model.visual.") for k in changed)
    model.save_pretrained(tmp_path)  # the probes are not part of the model
    assert (
        load_file(tmp_path / "model.safetensors").keys() == load_file(init_dir / "model.safetensors").keys()
    )
    assert np.isnan(warm_up_vision(model, processor, examples, frames, 0))
    with pytest.raises(ValueError, match="needs pointwise or pairwise labels"):
        warm_up_vision(model, processor, [], frames, 1)


def test_sft_with_the_probe_logs_its_loss(init_dir: Path, small_plan: Callable[..., TrainPlan]) -> None:
    plan = small_plan(num_frames=NUM_FRAMES, describe_share=0.25, probe_weight=1.0)
    metrics = train_critic(plan)
    assert 0 < metrics["train/probe_loss"] < 10
    saved = load_file(Path(plan.out_dir) / "model.safetensors")
    assert saved.keys() == load_file(init_dir / "model.safetensors").keys()
    assert read_manifest(plan.out_dir)["training"]["probe_weight"] == 1.0


def test_warm_up_with_attributes_learns_them_too(examples: list[SftExample], init_dir: Path) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    clips = sorted({e.video_paths[0] for e in examples if e.kind == "pointwise"})
    # A planted attribute per clip (what it "shows"), one unknown, on the clips the verdicts label.
    attributes = {p: [i % len(ATTRIBUTES["colour"]), i % 2, -100] for i, p in enumerate(clips)}
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    warm = functools.partial(
        warm_up_vision, model, processor, examples, frames, lr=3e-3, attributes=attributes
    )
    first, last = warm(1), warm(40, log_every=10)
    assert last < first
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("model.visual.") for k in changed)
    with pytest.raises(ValueError, match="none is for a clip with a verdict label"):
        warm_up_vision(model, processor, examples, frames, 1, attributes={"elsewhere.mp4": [0, 0, 0]})
    with pytest.raises(ValueError, match="none is for a clip with a verdict label"):
        warm_up_vision(model, processor, examples, frames, 1, attributes={})
