"""Real videos for the λ2 NLL term (IPO Eq. 9, LiFT Eq. 3): which clips a micro-batch draws, and loading.

Every micro-batch of an optimizer step draws its own real micro-batch beside the preference one. The
draw is a function of (seed, optimizer step, slot), where the slot is the micro-batch's place in the
global batch (``rank · grad_accum + i``), never of the rows it rides with: 1 worker × 2 micro-batches
and 2 workers × 1 then see the same real clips under the same noise (slots 0 and 1 in both), and a
resumed run redraws exactly what the interrupted one drew.
"""

import hashlib
from dataclasses import dataclass

import pyarrow as pa
import torch
from torch import Tensor

from ipo_ray.data import columns as col
from ipo_ray.generator.files import load_latents, load_prompt_embeds


@dataclass(frozen=True)
class RealClips:
    """The encoded real clips a Ray Train worker draws from (paths only: the tensors load per draw).

    Args:
        ids: N video ids. latent_paths: N absolute latent files. embeds_paths: N absolute caption
            embedding files (several clips may share one caption's file).
    """

    ids: tuple[str, ...]
    latent_paths: tuple[str, ...]
    embeds_paths: tuple[str, ...]

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.latent_paths) == len(self.embeds_paths):
            raise ValueError("RealClips needs one latent and one embedding path per id")
        if not self.ids:
            raise ValueError("RealClips needs at least one clip")

    @classmethod
    def from_table(cls, table: pa.Table) -> "RealClips":
        """From an encoded ``real_videos`` table with absolute paths (`preflight.check_real_table`)."""
        return cls(
            tuple(table[col.VIDEO_ID].to_pylist()),
            tuple(table[col.LATENT_PATH].to_pylist()),
            tuple(table[col.PROMPT_EMBEDS_PATH].to_pylist()),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """(R, *latent) latents and (R, S, D) caption embeddings of the clips at ``indices``."""
        latents = torch.stack([load_latents(self.latent_paths[i]) for i in indices])
        embeds = torch.stack([load_prompt_embeds(self.embeds_paths[i]) for i in indices])
        return latents, embeds


def hash_seed(*parts: object) -> int:
    """A torch seed from the parts joined by ':' (sha256), so a draw depends on its parts only."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # torch seeds must fit a signed 64-bit integer


def real_draw(
    seed: int, step: int, slot: int, num_clips: int, batch_size: int
) -> tuple[list[int], list[int]]:
    """The real clips and noise seeds of one micro-batch: distinct clips, one noise seed per clip.

    Args:
        seed: the run's alignment seed.
        step: the optimizer step the micro-batch belongs to (0-based).
        slot: the micro-batch's index in the global batch, ``rank · grad_accum + i``.
        num_clips: N clips to draw from. batch_size: R ≤ N clips per micro-batch.

    Returns:
        (R indices into the clips, R noise seeds for ``AlignmentStep.draw_noise_per_sample``).
    """
    if not 1 <= batch_size <= num_clips:
        raise ValueError(
            f"real batch size must be in [1, {num_clips}] (the clips available), got {batch_size}"
        )
    g = torch.Generator().manual_seed(hash_seed(seed, "real", step, slot))
    indices = torch.randperm(num_clips, generator=g)[:batch_size].tolist()
    return indices, [hash_seed(seed, "real-noise", step, slot, j) for j in range(batch_size)]
