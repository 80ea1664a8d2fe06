"""The held-out evaluation a critic training run does every ``eval_every`` steps (rank 0)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ipo_ray.critic.evaluate import (
    VIDEO_CHECK_ROWS,
    accuracy,
    first_token_verdicts,
    oracle_verdicts,
    video_reliance,
)
from ipo_ray.critic.sft import FrameCache, SftExample
from ipo_ray.data import TableKind, read_table
from ipo_ray.world.render import RenderSettings


@dataclass(frozen=True)
class WorldCheck:
    """World labels: the prompts table whose specs the oracle judges, and its render settings.

    Attributes:
        prompts_path: A prompts table with ``spec_json``.
        render: The settings the clips were rendered with.
    """

    prompts_path: str
    render: RenderSettings


class HeldOutEvaluator:
    """First-token accuracy on held-out rows (at most `eval_max`, a fixed sample), against the labels
    and, for world data, the oracle (its verdicts computed once); given `contrasts` (caption
    contrasts of held-out clips, `contrast.caption_contrast_pairs`), also on those
    (``critic/contrast/pointwise`` and ``.../pairwise``): whether the comparison of video and
    caption was learned, rather than the training pairs.
    Also how much the answers depend on the right video (`evaluate.video_reliance`).
    """

    def __init__(
        self,
        held: list[SftExample],
        frames: FrameCache,
        seed: int,
        with_reasons: bool,
        eval_max: int,
        world: WorldCheck | None = None,
        contrasts: Sequence[SftExample] = (),
    ) -> None:
        rng = np.random.default_rng(seed)
        keep = sorted(rng.permutation(len(held))[:eval_max]) if held else []
        self.examples = [held[i] for i in keep]
        self.frames = frames
        self.with_reasons = with_reasons
        self.oracle = None
        self.contrasts = {k: [r for r in contrasts if r.kind == k] for k in ("pointwise", "pairwise")}
        if world is not None and self.examples:
            prompts = read_table(world.prompts_path, TableKind.PROMPTS)
            self.oracle = oracle_verdicts(self.examples, prompts, world.render)

    def __call__(self, model: torch.nn.Module, processor: Any) -> dict[str, float]:
        if not self.examples:
            return {}
        predicted = first_token_verdicts(model, processor, self.examples, self.frames)
        checked = self.examples[:VIDEO_CHECK_ROWS]
        right, shuffled = video_reliance(model, processor, checked, self.frames, self.with_reasons)
        out = {
            "critic/answer_loss/right_video": right,
            "critic/answer_loss/shuffled_video": shuffled,
        }
        out |= {
            f"critic/labels/{k}": v
            for k, v in accuracy(self.examples, predicted, [e.verdict for e in self.examples]).items()
        }
        if self.oracle is not None:
            out |= {
                f"critic/oracle/{k}": v for k, v in accuracy(self.examples, predicted, self.oracle).items()
            }
        for kind, rows in self.contrasts.items():
            if rows:
                said = first_token_verdicts(model, processor, rows, self.frames)
                out[f"critic/contrast/{kind}"] = float(
                    np.mean([p == r.verdict for p, r in zip(said, rows, strict=True)])
                )
        return out
