"""The training run's held-out evaluation: labels, oracle and caption-contrast accuracies."""

import dataclasses
from pathlib import Path

import numpy as np

from ipo_ray.critic.augment import mirrored
from ipo_ray.critic.evaluate import both_orders_verdicts, first_token_probabilities, first_token_verdicts
from ipo_ray.critic.held_out import HeldOutEvaluator, WorldCheck
from ipo_ray.critic.model import load_critic
from ipo_ray.critic.sft import FrameCache, SftExample
from ipo_ray.world.render import RenderSettings


def test_held_out_rows_the_oracle_and_contrasts_are_scored(
    seed_dir: Path, init_dir: Path, examples: list[SftExample]
) -> None:
    model, processor = load_critic(init_dir)
    model.eval()
    frames = FrameCache(16)
    semantic = [e for e in examples if e.kind == "pointwise" and e.dimension == "semantic_consistency"]
    a, b = semantic[0], next(e for e in semantic if e.caption != semantic[0].caption)
    contrasts = [
        dataclasses.replace(a, label_id="c1", caption=b.caption, verdict="Bad"),
        dataclasses.replace(b, label_id="c2", caption=a.caption, verdict="Bad"),
        SftExample("c3", "pairwise", a.dimension, (a.video_paths[0], b.video_paths[0]), a.caption, "A", ""),
        SftExample("c4", "pairwise", a.dimension, (a.video_paths[0],) * 2, a.caption, "tie", ""),
    ]
    world = WorldCheck(str(seed_dir / "prompts.parquet"), RenderSettings())
    evaluator = HeldOutEvaluator(examples, frames, 0, True, 6, world, contrasts)
    out = evaluator(model, processor)
    assert len(evaluator.examples) == 6
    assert {"critic/labels/pointwise/mean", "critic/oracle/pointwise/mean"} <= set(out)
    assert "critic/answer_loss/right_video" in out and "critic/answer_loss/shuffled_video" in out
    said = first_token_verdicts(model, processor, contrasts, frames)
    right = [s == c.verdict for s, c in zip(said, contrasts, strict=True)]
    assert out["critic/contrast/pointwise"] == np.mean(right[:2])
    assert out["critic/contrast/pairwise"] == np.mean(right[2:])
    plain = HeldOutEvaluator(examples, frames, 0, True, 6)(model, processor)
    assert not any(k.startswith(("critic/oracle", "critic/contrast")) for k in plain)


def test_both_orders_average_each_pair_with_its_mirror(init_dir: Path, examples: list[SftExample]) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(16)
    pairs = [e for e in examples if e.kind == "pairwise"][:3]
    pointwise = [e for e in examples if e.kind == "pointwise"][:2]
    # Batches of one: every read below computes each question exactly alike, so verdicts compare exactly.
    probs = first_token_probabilities(model, processor, pairs + [mirrored(e) for e in pairs], frames, 1)
    assert all(set(p) == {"A", "B", "tie"} and abs(sum(p.values()) - 1) < 1e-5 for p in probs)
    got = both_orders_verdicts(model, processor, pointwise + pairs, frames, 1)
    assert got[:2] == first_token_verdicts(model, processor, pointwise, frames, 1)
    mirror = {"A": "B", "B": "A", "tie": "tie"}
    for given, swapped, verdict in zip(probs[:3], probs[3:], got[2:], strict=True):
        averaged = {v: (given[v] + swapped[mirror[v]]) / 2 for v in given}
        assert verdict == max(averaged, key=averaged.__getitem__)
