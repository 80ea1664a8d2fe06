"""A training-only verdict probe on the critic's video tokens (deep supervision of the vision path).

A critic trained from scratch learns to read its clips (the describe task) and to write reasons
that lean on them, yet its verdict token stayed at the class prior in every run without a probe
(assets/world_critic/README.md): the verdict is decided at one text position whose attention finds
little in video tokens that are nearly the same for every clip. The probe gives the vision tower a
direct signal: linear heads on each video's mean merged token predict the labelled verdicts
(pointwise: Good/Normal/Bad per dimension from one video; pairwise: A/B/tie per dimension from
both videos). The video tokens then carry what decides the verdict, and the language model only
has to look them up. The probe is dropped at save: the checkpoint is a plain Qwen2-VL.

The probe reads the vision tower's output through a forward hook, so the training step's one
forward pass serves both losses.

`warm_up_vision` is the stage before SFT for a critic built from scratch: the vision tower and the
probe alone, on every pointwise clip's verdicts (all dimensions at once), a few thousand clips a
minute. Real VLM critics start from a pretrained vision encoder; this is the world critic's
pretraining, on its own seed labels. Measured on a 20,000-clip seed set: with the warm-up the
verdicts left the class prior within 450 SFT steps (pointwise 0.859 vs the oracle after 600);
without it, and with the probe only during SFT, they stayed at the prior for 1,200 steps
(assets/world_critic/README.md).
"""

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2VLForConditionalGeneration

from ipo_ray.critic.attributes import ATTRIBUTES
from ipo_ray.critic.sft import FrameCache, SftExample
from ipo_ray.vocab import DIMENSIONS

POINT_CLASSES = ("Good", "Normal", "Bad")
PAIR_CLASSES = ("A", "B", "tie")


class VerdictProbe(nn.Module):
    """Linear verdict heads on the mean merged video token of each video of the last forward.

    Args:
        core: The critic (`Qwen2VLForConditionalGeneration`); its vision tower gets a forward hook.
    """

    def __init__(self, core: Qwen2VLForConditionalGeneration) -> None:
        super().__init__()
        width = core.config.text_config.hidden_size
        self.merge = core.config.vision_config.spatial_merge_size
        self.point = nn.Linear(width, len(DIMENSIONS) * len(POINT_CLASSES))
        self.pair = nn.Linear(2 * width, len(DIMENSIONS) * len(PAIR_CLASSES))
        self._seen: tuple[torch.Tensor, torch.Tensor] | None = None
        core.model.visual.register_forward_hook(self._capture, with_kwargs=True)

    def _capture(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self._seen = (output.pooler_output, grid)

    def video_means(self) -> torch.Tensor:
        """(V, H): each video's mean merged token, in the order the last forward saw the videos."""
        if self._seen is None:
            raise RuntimeError("the probe has seen no forward pass with videos")
        tokens, grid = self._seen
        sizes = (grid.prod(-1) // self.merge**2).tolist()
        return torch.stack([chunk.mean(0) for chunk in torch.split(tokens, sizes)])

    def loss(self, examples: Sequence[SftExample]) -> torch.Tensor:
        """Mean cross-entropy of the probe's verdicts on the labelled rows of the last forward.

        Args:
            examples: The batch rows, in batch order (their videos are the forward's videos);
                describe rows are skipped.

        Returns:
            A 0-d tensor (0 when no row is labelled).
        """
        means = self.video_means()
        logits, targets, video = [], [], 0
        for e in examples:
            dim = DIMENSIONS.index(e.dimension) if e.kind != "describe" else -1
            if e.kind == "pointwise":
                scores = self.point(means[video]).view(len(DIMENSIONS), -1)[dim]
                logits.append(scores)
                targets.append(POINT_CLASSES.index(e.verdict))
            elif e.kind == "pairwise":
                both = torch.cat([means[video], means[video + 1]])
                logits.append(self.pair(both).view(len(DIMENSIONS), -1)[dim])
                targets.append(PAIR_CLASSES.index(e.verdict))
            video += len(e.video_paths)
        if video != means.shape[0]:
            raise ValueError(f"{len(examples)} rows hold {video} videos but the forward saw {means.shape[0]}")
        if not logits:
            return means.sum() * 0.0
        return F.cross_entropy(torch.stack(logits), torch.tensor(targets, device=means.device))


def verdict_targets(examples: Sequence[SftExample]) -> dict[tuple[str, ...], list[int]]:
    """Judged item (one video path, or the pair's two) → class index of its verdict per dimension
    (`POINT_CLASSES` or `PAIR_CLASSES`; −100 where that dimension has no label)."""
    targets: dict[tuple[str, ...], list[int]] = {}
    for e in examples:
        if e.kind in ("pointwise", "pairwise"):
            classes = POINT_CLASSES if e.kind == "pointwise" else PAIR_CLASSES
            row = targets.setdefault(e.video_paths, [-100] * len(DIMENSIONS))
            row[DIMENSIONS.index(e.dimension)] = classes.index(e.verdict)
    return targets


class _EncodedItems:
    """The processor's patches of every video of some judged items, encoded once."""

    def __init__(
        self, processor: Any, frames: FrameCache, items: list[tuple[str, ...]], targets: list[list[int]]
    ):
        videos = [path for item in items for path in item]
        self.paths = videos
        encoded = processor.video_processor(videos=[frames(p) for p in videos], return_tensors="pt")
        pixels = encoded["pixel_values_videos"]
        self.pixels = pixels.view(len(videos), pixels.shape[0] // len(videos), -1)  # (V, P, D): equal grids
        self.grid = encoded["video_grid_thw"]  # (V, 3)
        self.per_item = len(items[0]) if items else 1
        self.labels = torch.tensor(targets, dtype=torch.long).view(len(items), len(DIMENSIONS))

    def __len__(self) -> int:
        return self.labels.shape[0]

    def means(self, visual: nn.Module, width: int, idx: torch.Tensor) -> torch.Tensor:
        """(B, per_item·width): the items' videos' mean merged tokens, side by side."""
        videos = (idx[:, None] * self.per_item + torch.arange(self.per_item)).reshape(-1)
        device = next(visual.parameters()).device
        pixels = self.pixels[videos].reshape(-1, self.pixels.shape[-1]).to(device)
        tokens = visual(pixels, grid_thw=self.grid[videos].to(device))
        return tokens.pooler_output.view(len(videos), -1, width).mean(1).view(len(idx), -1)


def warm_up_vision(
    core: Qwen2VLForConditionalGeneration,
    processor: Any,
    examples: Sequence[SftExample],
    frames: FrameCache,
    steps: int,
    *,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
    log: Callable[[dict[str, float]], None] | None = None,
    log_every: int = 250,
    attributes: Mapping[str, Sequence[int]] | None = None,
) -> float:
    """Trains the vision tower (and merger) with linear verdict probes on the labelled items.

    Every labelled clip and pair is encoded once; each step draws `batch_size` clips and half as
    many pairs and predicts all their labelled dimensions: a clip's verdicts from its mean merged
    token, a pair's preferences from both clips' means side by side. The language model is
    untouched; the probes are thrown away.

    Args:
        core: The critic, trained in place.
        processor: Its processor (the video processor encodes the frames as serving does).
        examples: Training rows (pass the training split only); describe rows are unused.
        frames: Frame sampler (`FrameCache`), with the number of frames serving samples.
        steps: Optimiser steps; 0 does nothing.
        batch_size: Clips per step (pairs: half as many).
        lr, weight_decay: AdamW.
        seed: Item order.
        log: Called every `log_every` steps with ``warmup/step``, ``warmup/loss``, ``warmup/minutes``.
        attributes: Video path → class index per attribute of `attributes.ATTRIBUTES` (-100 where
            unknown), e.g. `attributes.attribute_targets`: linear heads on the same mean tokens
            predict them too (clips with a verdict label only), so the tower learns what a clip
            shows, not only what looks wrong.

    Returns:
        The mean probe loss over the last `log_every` steps (NaN for 0 steps).

    Raises:
        ValueError: no pointwise or pairwise labels to warm up on.
    """
    if steps <= 0:
        return float("nan")
    targets = verdict_targets(examples)
    if not targets:
        raise ValueError("the vision warm-up needs pointwise or pairwise labels; the training rows have none")
    start = time.perf_counter()
    sets = []
    for size, per_step in ((1, batch_size), (2, max(1, batch_size // 2))):
        items = sorted(item for item in targets if len(item) == size)
        if items:
            sets.append((_EncodedItems(processor, frames, items, [targets[i] for i in items]), per_step))
    visual, width = core.model.visual, core.config.text_config.hidden_size
    device = next(visual.parameters()).device
    heads = {
        1: nn.Linear(width, len(DIMENSIONS) * 3, device=device),
        2: nn.Linear(2 * width, len(DIMENSIONS) * 3, device=device),
    }
    # Attribute heads read single clips' mean tokens; targets in the clip set's item order.
    wanted = ATTRIBUTES.values() if attributes is not None else ()
    attribute_heads = nn.ModuleList(nn.Linear(width, len(classes), device=device) for classes in wanted)
    seen = _attribute_labels(sets, attributes) if attributes is not None else None
    params = [*visual.parameters(), *heads[1].parameters(), *heads[2].parameters()]
    params += list(attribute_heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    visual.train()
    losses: list[float] = []
    for step in range(1, steps + 1):
        loss = torch.zeros((), device=device)
        for items, per_step in sets:
            idx = torch.from_numpy(rng.choice(len(items), size=min(per_step, len(items)), replace=False))
            means = items.means(visual, width, idx)
            logits = heads[items.per_item](means).view(-1, 3)  # (B·dims, 3)
            labels = items.labels[idx].reshape(-1).to(device)
            loss = loss + F.cross_entropy(logits, labels, ignore_index=-100)
            if seen is not None and items.per_item == 1:
                for k, head in enumerate(attribute_heads):
                    target = seen[idx, k].to(device)
                    if (target != -100).any():
                        loss = loss + F.cross_entropy(head(means), target, ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if log is not None and (step % log_every == 0 or step == steps):
            minutes = (time.perf_counter() - start) / 60
            log(
                {
                    "warmup/step": float(step),
                    "warmup/loss": float(np.mean(losses[-log_every:])),
                    "warmup/minutes": minutes,
                }
            )
    return float(np.mean(losses[-log_every:]))


def _attribute_labels(
    sets: list[tuple[_EncodedItems, int]], attributes: Mapping[str, Sequence[int]]
) -> torch.Tensor:
    """(clips, attributes): each single-clip item's attribute targets (-100 where it has none).

    Raises:
        ValueError: no labelled clip has attribute targets (nothing to learn them from).
    """
    clips = next((items for items, _ in sets if items.per_item == 1), None)
    rows = [list(attributes.get(path, [-100] * len(ATTRIBUTES))) for path in (clips.paths if clips else [])]
    if not any(v != -100 for row in rows for v in row):
        raise ValueError("attribute targets were given, but none is for a clip with a verdict label")
    return torch.tensor(rows, dtype=torch.long)
