"""Training-table rows → tensor batches: what each alignment worker reads from its Ray Data shard.

A ``pairs`` table (DPO) names the winner's and loser's cached latents and the prompt, whose text
embedding lies at ``{text_embeds_dir}/{prompt_id}.safetensors``; a ``samples`` table (KTO,
reward-weighted learning, rejection sampling) names each candidate's latents and embedding file.
"""

from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ipo_ray.align.batches import PairBatch, SampleBatch
from ipo_ray.align.real import hash_seed
from ipo_ray.data import columns as col
from ipo_ray.generator.files import load_latents, load_prompt_embeds


def load_pairs(rows: dict[str, np.ndarray], text_embeds_dir: str) -> PairBatch:
    """A micro-batch of pairs-table rows (numpy columns) → a :class:`PairBatch` of cached tensors."""

    text_dir = Path(text_embeds_dir)
    return PairBatch(
        winner=torch.stack([load_latents(p) for p in rows[col.WINNER_LATENT_PATH]]),
        loser=torch.stack([load_latents(p) for p in rows[col.LOSER_LATENT_PATH]]),
        text_embeds=torch.stack(
            [load_prompt_embeds(text_dir / f"{pid}.safetensors") for pid in rows[col.PROMPT_ID]]
        ),
        ids=tuple(str(i) for i in rows[col.PAIR_ID]),
    )


def load_samples(rows: dict[str, np.ndarray], objective: str) -> SampleBatch:
    """A micro-batch of samples-table rows → a :class:`SampleBatch` with what ``objective`` reads.

    KTO reads the ``desirable`` labels, reward-weighted learning the ``reward`` weights; rejection
    sampling reads neither (its rows were filtered on ``passes`` before training).
    """
    return SampleBatch(
        latents=torch.stack([load_latents(p) for p in rows[col.LATENT_PATH]]),
        text_embeds=torch.stack([load_prompt_embeds(p) for p in rows[col.PROMPT_EMBEDS_PATH]]),
        desirable=torch.as_tensor(rows[col.DESIRABLE].astype(bool)) if objective == "kto" else None,
        weights=torch.as_tensor(rows[col.REWARD], dtype=torch.float32) if objective == "rwl" else None,
        ids=tuple(str(i) for i in rows[col.CANDIDATE_ID]),
    )


def to_device(batch: PairBatch | SampleBatch, device: torch.device) -> PairBatch | SampleBatch:
    """`batch` with its tensors on `device` (the same object on CPU)."""
    if device.type == "cpu":
        return batch
    moved = {
        f.name: getattr(batch, f.name).to(device)
        for f in fields(batch)
        if isinstance(getattr(batch, f.name), Tensor)
    }
    return replace(batch, **moved)


def row_seed(seed: int, epoch: int, row_id: str) -> int:
    """The noise seed of one pair or sample in one epoch: a function of the data, not of placement."""
    return hash_seed(seed, epoch, row_id)
