"""Critic accuracy on held-out labels, per dimension, as IPO Table 6 and LiFT Table 2 report it.

Three ways to read the critic's verdict:

- `greedy_verdicts`: greedy answers through any `CriticBackend` (transformers or vLLM), parsed —
  what the served critic says; an unparseable answer counts as wrong.
- `first_token_verdicts`: the most likely verdict token at the first answer position, one forward
  per batch — cheap enough to run inside training. Greedy decoding starts with the same argmax
  whenever a verdict token leads the whole vocabulary, which a trained critic's does. A
  describe-first example (`SftExample.thinking`) is read after its thinking and ``Answer:``.
- `both_orders_verdicts`: first-token, with each pairwise question also asked with the videos
  swapped and the two orders' probabilities averaged (position bias cancels).

Two references: the labels table itself (the annotators' majority), and in the embedded world the
noise-free oracle (`oracle_verdicts`), the ground truth the issue's bar is measured against.
"""

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import torch
from transformers import Qwen2VLForConditionalGeneration, Qwen2VLProcessor

from ipo_ray.critic.augment import mirrored
from ipo_ray.critic.judge import CriticBackend, CriticRequest
from ipo_ray.critic.parse import parse_answer
from ipo_ray.critic.sft import SftExample, answer_loss, collate, encode, model_device
from ipo_ray.critic.templates import answer_prefix
from ipo_ray.critic.verdict_tokens import verdict_ids_after_marker, verdict_token_ids
from ipo_ray.data import columns as col
from ipo_ray.data import read_frames
from ipo_ray.vocab import DIMENSIONS
from ipo_ray.world.oracle import compare, judge
from ipo_ray.world.prompts import spec_from_json
from ipo_ray.world.render import RenderSettings

Frames = Callable[[str], np.ndarray]  # video path → uint8 (T, H, W, 3), e.g. `sft.FrameCache`


def greedy_verdicts(
    backend: CriticBackend, examples: Sequence[SftExample], frames: Frames
) -> list[str | None]:
    """The backend's answer to each example's question, parsed; None where unparseable.

    The backend should decode greedily (``SamplingConfig(temperature=0)``); one call for all.
    """
    requests = [CriticRequest(tuple(frames(p) for p in e.video_paths), e.question()) for e in examples]
    texts = backend.generate(requests, 1) if requests else []
    return [parse_answer(t[0], e.kind, e.asks_cot).verdict for t, e in zip(texts, examples, strict=True)]


def first_token_verdicts(
    model: Qwen2VLForConditionalGeneration,
    processor: Qwen2VLProcessor,
    examples: Sequence[SftExample],
    frames: Frames,
    batch_size: int = 32,
) -> list[str]:
    """The verdict whose first token is most likely where the answer starts (see module docstring)."""
    probs = first_token_probabilities(model, processor, examples, frames, batch_size)
    return [_most_likely(p) for p in probs]


@torch.inference_mode()
def first_token_probabilities(
    model: Qwen2VLForConditionalGeneration,
    processor: Qwen2VLProcessor,
    examples: Sequence[SftExample],
    frames: Frames,
    batch_size: int = 32,
) -> list[dict[str, float]]:
    """Per example, each verdict of its kind → the probability of its first token where the answer
    starts, renormalised over the kind's verdicts (so the values sum to 1)."""
    tokenizer = processor.tokenizer
    direct = {kind: verdict_token_ids(tokenizer, kind) for kind in ("pointwise", "pairwise")}
    after_marker = {kind: verdict_ids_after_marker(tokenizer, kind) for kind in ("pointwise", "pairwise")}
    merge = model.config.vision_config.spatial_merge_size
    out: list[dict[str, float]] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = collate(
            [
                encode(
                    processor,
                    e,
                    [frames(p) for p in e.video_paths],
                    with_answer=False,
                    prefix=answer_prefix(e.thinking) if e.thinking else "",
                )
                for e in chunk
            ],
            tokenizer.pad_token_id,
            merge,
            model_device(model),
        )
        hidden = model.model(**batch).last_hidden_state  # (B, L, H)
        last = batch["attention_mask"].sum(1) - 1  # right padding: the prompt's last real token
        logits = model.lm_head(hidden[torch.arange(len(chunk), device=last.device), last])  # (B, V)
        for row, e in zip(logits, chunk, strict=True):
            ids = (after_marker if e.thinking else direct)[e.kind]
            probs = row[list(ids.values())].float().softmax(-1).tolist()
            out.append(dict(zip(ids, probs, strict=True)))
    return out


def both_orders_verdicts(
    model: Qwen2VLForConditionalGeneration,
    processor: Qwen2VLProcessor,
    examples: Sequence[SftExample],
    frames: Frames,
    batch_size: int = 32,
) -> list[str]:
    """First-token verdicts with every pairwise question also asked with its videos swapped
    (`augment.mirrored`) and the two orders' probabilities averaged, A and B mapped back, so a
    liking for a position cancels (the read-out of POST /v1/compare's ``both_orders``).
    Pointwise questions are read as `first_token_verdicts` reads them."""
    mirrors = [mirrored(e) for e in examples if e.kind == "pairwise"]
    probs = first_token_probabilities(model, processor, [*examples, *mirrors], frames, batch_size)
    swapped = iter(probs[len(examples) :])
    out = []
    for e, given in zip(examples, probs[: len(examples)], strict=True):
        if e.kind == "pairwise":
            other = next(swapped)
            given = {v: (given[v] + other[_MIRROR[v]]) / 2 for v in given}
        out.append(_most_likely(given))
    return out


_MIRROR = {"A": "B", "B": "A", "tie": "tie"}  # a verdict asked swapped, in the given order


def served_read_name(judges_first: bool, vote: str, both_orders: bool | None) -> str:
    """The offline read (``jobs/eval_critic.py --read``) that gives the Serve app's verdicts.

    Args:
        judges_first: The critic declares the judge-first read (`model.critic_judges_first`).
        vote: ``critic.vote``: ``"first_token"`` reads the verdict token, ``"samples"`` votes
            sampled answers (read here as greedy: the samples' most likely answer).
        both_orders: ``serve.compare_both_orders`` (None = both for judge-first critics only).

    Returns:
        ``"judge-first"``, ``"both-orders"``, ``"first-token"`` or ``"greedy"``.
    """
    if judges_first:
        return "judge-first"
    if vote == "samples":
        return "greedy"
    return "both-orders" if both_orders else "first-token"


def _most_likely(probs: dict[str, float]) -> str:
    return max(probs, key=probs.__getitem__)  # the first of equals, in the verdicts' order


def oracle_verdicts(examples: Sequence[SftExample], prompts: pa.Table, settings: RenderSettings) -> list[str]:
    """The world oracle's verdict for each example, judged on the decoded mp4 frames (all of them).

    Args:
        examples: Labels of world clips.
        prompts: A prompts table whose ``spec_json`` holds each caption's structured spec; rows are
            matched by caption text (labels carry the text, not the prompt id).
        settings: The world geometry the clips were rendered with.

    Raises:
        ValueError: a caption has no spec in `prompts`.
    """
    specs = dict(zip(prompts[col.TEXT].to_pylist(), prompts[col.SPEC_JSON].to_pylist(), strict=True))
    out = []
    for e in examples:
        if specs.get(e.caption) is None:
            raise ValueError(
                f"no spec for caption {e.caption!r} of label {e.label_id!r} in the prompts table"
            )
        prompt = spec_from_json(specs[e.caption])
        clips = [read_frames(p, num_frames=None) for p in e.video_paths]
        if e.kind == "pointwise":
            out.append(judge(clips[0], prompt, settings)[e.dimension].verdict)
        else:
            out.append(compare(clips[0], clips[1], prompt, settings)[e.dimension].preference)
    return out


def accuracy(
    examples: Sequence[SftExample], predicted: Sequence[str | None], reference: Sequence[str]
) -> dict[str, float]:
    """Agreement per kind and dimension (None predictions count as wrong).

    Returns:
        ``pointwise/<dimension>``, ``pointwise/mean`` (mean over dimensions, IPO's headline),
        ``pairwise/<dimension>`` and ``pairwise/all`` (over all pairwise rows), for the kinds and
        dimensions present; values in [0, 1].
    """
    if not len(examples) == len(predicted) == len(reference):
        raise ValueError(
            f"{len(examples)} examples, {len(predicted)} predictions, {len(reference)} references"
        )
    hits: dict[tuple[str, str], list[bool]] = {}
    for e, p, r in zip(examples, predicted, reference, strict=True):
        hits.setdefault((e.kind, e.dimension), []).append(p == r)
    result = {}
    for kind in ("pointwise", "pairwise"):
        per_dim = {d: float(np.mean(hits[(kind, d)])) for d in DIMENSIONS if (kind, d) in hits}
        result |= {f"{kind}/{d}": v for d, v in per_dim.items()}
        if per_dim and kind == "pointwise":
            result["pointwise/mean"] = float(np.mean(list(per_dim.values())))
        if per_dim and kind == "pairwise":
            result["pairwise/all"] = float(np.mean([h for (k, _), v in hits.items() if k == kind for h in v]))
    return result


def majority_baseline(train: Sequence[SftExample], examples: Sequence[SftExample]) -> list[str]:
    """The most frequent training verdict of each example's (kind, dimension): the accuracy floor.

    World labels are mostly Good (a defect spoils one dimension at most), so a critic must beat this
    to have learned anything (a constant answer was the failure seen without reasons).
    """
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for e in train:
        key = (e.kind, e.dimension)
        counts.setdefault(key, {})
        counts[key][e.verdict] = counts[key].get(e.verdict, 0) + 1
    return [
        max(counts.get((e.kind, e.dimension), {"": 0}).items(), key=lambda kv: kv[1])[0] for e in examples
    ]


def format_table(results: dict[str, dict[str, float]]) -> str:
    """A text table: one row per metric (kind/dimension), one column per result (e.g. "oracle")."""
    names = sorted({m for r in results.values() for m in r}, key=_metric_order)
    width = max(14, *(len(c) + 2 for c in results))
    lines = [f"{'accuracy':34s}" + "".join(f"{c:>{width}s}" for c in results)]
    for name in names:
        lines.append(
            f"{name:34s}" + "".join(f"{r.get(name, float('nan')):{width}.3f}" for r in results.values())
        )
    return "\n".join(lines)


def _metric_order(name: str) -> tuple[int, int]:
    kind, _, dim = name.partition("/")
    dims = [*DIMENSIONS, "mean", "all"]
    return (0 if kind == "pointwise" else 1, dims.index(dim) if dim in dims else len(dims))


VIDEO_CHECK_ROWS = 64  # held-out rows of the video-reliance check at each evaluation


@torch.inference_mode()
def video_reliance(
    model: torch.nn.Module,
    processor: Qwen2VLProcessor,
    examples: Sequence[SftExample],
    frames: Frames,
    with_reasons: bool = True,
) -> tuple[float, float]:
    """Answer loss per token on `examples` with their own videos, and with each row's videos
    taken from the next row (a shuffle that changes every video).

    A critic that reads the video has a clearly higher loss on shuffled videos; equal losses mean
    it answers from the text alone (the failure `sft.describe_examples` exists to prevent).

    Returns:
        (right, shuffled); NaN, NaN for fewer than two examples.
    """
    if len(examples) < 2:
        return float("nan"), float("nan")
    pad, merge = processor.tokenizer.pad_token_id, model.config.vision_config.spatial_merge_size
    result = []
    for shift in (0, 1):
        total, weight = 0.0, 0.0
        for first in range(0, len(examples), 32):
            batch = []
            for i in range(first, min(first + 32, len(examples))):
                e, donor = examples[i], examples[(i + shift) % len(examples)]
                paths = [donor.video_paths[k % len(donor.video_paths)] for k in range(len(e.video_paths))]
                batch.append(encode(processor, e, [frames(p) for p in paths], True, with_reasons))
            loss, w = answer_loss(model, collate(batch, pad, merge, model_device(model)))
            total, weight = total + loss.item(), weight + w
        result.append(total / weight)
    return result[0], result[1]
