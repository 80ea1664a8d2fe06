"""The SRPO loss term inside critic training (`train_loop.train_critic`), for one worker.

The frozen reference is the critic training starts from, so its log-probs are computed once, before
the first step, with that same model under ``no_grad``: no second model is held while training.
Each worker scores its share of the pairs and one all-reduce gives every worker all of them. At each
step every worker takes its slice of the step's global pair batch; its loss is divided by the global
pair count, so after the gradient all-reduce N workers take the step one worker takes.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ipo_ray.critic.sft import Encoded, FrameCache, answer_logps, collate, encode, model_device
from ipo_ray.critic.srpo import SrpoPair, srpo_loss

REFERENCE_BATCH = 16  # sequences per no-grad reference forward
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SrpoStepStats:
    """Global (all-reduced) statistics of one step's pairs.

    Attributes:
        loss_sum: Σ −log σ(margin) over the step's pairs.
        margin_sum: Σ margin.
        positive: Pairs whose margin is > 0.
        pairs: Pairs in the step.
    """

    loss_sum: float
    margin_sum: float
    positive: float
    pairs: float


class SrpoTerm:
    """Reference log-probs and per-step SRPO losses of one worker.

    Args:
        pairs: Every pair of the run (the same list on every worker).
        processor: The critic's processor.
        frames: Decoded frames per video path.
        pad_id, merge_size: For `sft.collate`.
        beta: SRPO β (`srpo.srpo_loss`).
        rank, world_size: This worker's place (a gloo group when world_size > 1).
    """

    def __init__(
        self,
        pairs: Sequence[SrpoPair],
        processor: object,
        frames: FrameCache,
        pad_id: int,
        merge_size: int,
        beta: float,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not beta > 0:
            raise ValueError(f"SRPO beta must be > 0, got {beta}")
        self.pairs = list(pairs)
        self.processor, self.frames = processor, frames
        self.pad_id, self.merge_size = pad_id, merge_size
        self.beta, self.rank, self.world_size = beta, rank, world_size
        self.reference: torch.Tensor | None = None  # (P, 2): chosen, rejected
        self.device = torch.device("cpu")  # the critic's, set by compute_reference
        self._encoded: dict[tuple[int, int], Encoded] = {}

    def _batch(self, keys: Sequence[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """Collated (pair index, side) sequences; side 0 = chosen, 1 = rejected."""
        for key in keys:
            if key not in self._encoded:
                pair = self.pairs[key[0]]
                text = pair.chosen if key[1] == 0 else pair.rejected
                videos = [self.frames(p) for p in pair.example.video_paths]
                self._encoded[key] = encode(self.processor, pair.example, videos, answer=text)  # type: ignore[arg-type]
        return collate([self._encoded[k] for k in keys], self.pad_id, self.merge_size, self.device)

    @torch.no_grad()
    def compute_reference(self, model: torch.nn.Module) -> None:
        """Scores every pair with `model` (the critic before any step); call once, on every rank."""
        self.device = model_device(model)
        # On the critic's device: NCCL all-reduces device tensors only.
        reference = torch.zeros(len(self.pairs), 2, dtype=torch.float64, device=self.device)
        keys = [(i, side) for i in range(self.rank, len(self.pairs), self.world_size) for side in (0, 1)]
        for first in range(0, len(keys), REFERENCE_BATCH):
            chunk = keys[first : first + REFERENCE_BATCH]
            logps = answer_logps(model, self._batch(chunk))
            for (i, side), value in zip(chunk, logps.tolist(), strict=True):
                reference[i, side] = value
        if self.world_size > 1 and self.pairs:  # every rank holds the same pairs, so all take this branch
            dist.all_reduce(reference)  # each pair was scored by exactly one rank; the others hold 0
        self.reference = reference.float()

    def step(
        self, model: torch.nn.Module, mine: np.ndarray, global_pairs: int
    ) -> tuple[torch.Tensor, SrpoStepStats]:
        """This worker's SRPO loss for the step and the step's global statistics.

        Args:
            model: The critic being trained.
            mine: This worker's pair indices of the step (may be empty).
            global_pairs: Pairs in the step over all workers (> 0), the loss's divisor.

        Returns:
            loss: 0-d, Σ over `mine` of the per-pair losses / `global_pairs` (differentiable).
            stats: Sums over all workers' pairs (one all-reduce).
        """
        if self.reference is None:
            raise RuntimeError("SrpoTerm.compute_reference must run before the first step")
        if len(mine):
            keys = [(int(i), side) for side in (0, 1) for i in mine]  # all chosen, then all rejected
            logps = answer_logps(model, self._batch(keys))
            policy_chosen, policy_rejected = logps[: len(mine)], logps[len(mine) :]
            ref = self.reference[torch.as_tensor(mine, dtype=torch.long, device=self.device)]
            losses, margins = srpo_loss(policy_chosen, policy_rejected, ref[:, 0], ref[:, 1], self.beta)
            loss = losses.sum() / global_pairs
            local = [losses.sum().item(), margins.sum().item(), float((margins > 0).sum()), float(len(mine))]
        else:
            loss = torch.zeros((), device=self.device)
            local = [0.0, 0.0, 0.0, 0.0]
        sums = torch.tensor(local, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            dist.all_reduce(sums)
        return loss, SrpoStepStats(*sums.tolist())


def srpo_term(
    pairs: Sequence[SrpoPair],
    beta: float,
    model: torch.nn.Module,
    processor: Any,  # noqa: ANN401 - a Qwen2VLProcessor
    frames: FrameCache,
    rank: int = 0,
    world_size: int = 1,
) -> SrpoTerm:
    """An `SrpoTerm` with its reference log-probs from `model` (the critic before any step).

    Fewer pairs than workers leave the step without an SRPO loss; that is logged, and the
    ``critic/srpo/pairs`` metric shows it.
    """
    if len(pairs) < world_size:
        log.warning("%d SRPO pairs for %d workers: training without the SRPO loss", len(pairs), world_size)
    term = SrpoTerm(
        pairs,
        processor,
        frames,
        processor.tokenizer.pad_token_id,
        model.config.vision_config.spatial_merge_size,
        beta,
        rank,
        world_size,
    )
    was_training = model.training
    model.eval()
    term.compute_reference(model)
    model.train(was_training)
    return term


def srpo_metrics(stats: Sequence[SrpoStepStats], num_pairs: int) -> dict[str, float]:
    """``critic/srpo/*`` over some steps: mean loss and margin per pair, share of positive margins."""
    out = {"critic/srpo/pairs": float(num_pairs)}
    seen = sum(s.pairs for s in stats)
    if seen:
        out |= {
            "critic/srpo/loss": sum(s.loss_sum for s in stats) / seen,
            "critic/srpo/accuracy": sum(s.positive for s in stats) / seen,
            "critic/srpo/margin": sum(s.margin_sum for s in stats) / seen,
        }
    return out
