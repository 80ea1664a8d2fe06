"""Pretraining pieces of the world generator: web-set batches, the flow-matching loss, EMA, benchmark.

Plain functions and objects; `jobs/pretrain_world_generator.py` strings them together. The model
and its design are in `ipo_ray.generator.world_model`.
"""

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ipo_ray.generator.types import video_to_uint8
from ipo_ray.generator.world import sample_clips
from ipo_ray.generator.world_model import WorldModel
from ipo_ray.world.benchmark import benchmark_prompts, score_clips
from ipo_ray.world.geometry import RenderSettings
from ipo_ray.world.prompts import expand
from ipo_ray.world.render import render
from ipo_ray.world.spec import PromptSpec
from ipo_ray.world.web import sample_web_set


def clips_to_pixels(clips: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 clips, each (T, H, W, 3) → the model's pixel latents (B, 3, T, H, W) in [-1, 1], float32."""
    video = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3)
    return video.float() / 127.5 - 1.0


def logit_normal_sigmas(
    n: int, generator: torch.Generator, mean: float = 0.0, std: float = 1.0
) -> torch.Tensor:
    """Noise levels σ = sigmoid(u), u ~ N(mean, std²), shape (n,) (SD3, Esser et al. 2024, Eq. 19)."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def flow_matching_loss(pred: torch.Tensor, noise: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Rectified-flow loss: mean over the batch of ‖pred − (ε − x₀)‖² per element.

    With x_σ = (1 − σ)·x₀ + σ·ε the flow's velocity dx_σ/dσ is ε − x₀ (Lipman et al. 2023; Liu et
    al. 2023); SD3's logit-normal σ weights the middle of the path (the σ sampling is the weighting).

    Args:
        pred: Predicted velocity (B, C, F, H, W).
        noise: ε (B, C, F, H, W).
        clean: x₀ (B, C, F, H, W).

    Returns:
        Scalar loss.
    """
    return (pred.float() - (noise - clean)).pow(2).mean()


@dataclass
class WebStream:
    """Batches of web-set clips with their prompt texts, rendered on the fly.

    Each batch mixes `fresh` newly sampled and rendered web clips with clips drawn from a buffer of
    recent renders (rendering costs ~4 ms a clip, a third of a small-model step at batch 32); every
    draw gets a freshly worded prompt text (`expand`), and `drop_rate` of the texts become "" for
    classifier-free guidance.

    Attributes:
        settings: Clip geometry.
        batch_size: Clips per batch.
        fresh: New clips rendered per batch (≤ batch_size).
        defect_rate: Share of web clips carrying a planted defect (the web default is 0.3).
        drop_rate: Share of texts replaced by the empty prompt.
        buffer_size: Recent renders kept for reuse.
        seed: Seed of everything the stream draws.
    """

    settings: RenderSettings
    batch_size: int = 32
    fresh: int = 8
    defect_rate: float = 0.3
    drop_rate: float = 0.1
    buffer_size: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.fresh <= self.batch_size:
            raise ValueError(f"fresh must be in [1, batch_size={self.batch_size}], got {self.fresh}")
        self._rng = np.random.default_rng(self.seed)
        self._buffer: list[tuple[np.ndarray, object]] = []
        self._round = 0
        self.rendered = 0

    def next(self) -> tuple[torch.Tensor, list[str]]:
        """One batch: pixel latents (B, 3, T, H, W) and B prompt texts ("" for dropped ones)."""
        n_new = self.fresh if self._buffer else self.batch_size  # the first batch is all fresh
        specs = sample_web_set(n_new, seed=self.seed * 1_000_003 + self._round, defect_rate=self.defect_rate)
        self._round += 1
        new = [(render(spec, self.settings), spec.prompt) for spec in specs]
        self.rendered += len(new)
        old = []
        if len(new) < self.batch_size:
            idx = self._rng.integers(len(self._buffer), size=self.batch_size - len(new))
            old = [self._buffer[i] for i in idx]
        for item in new:
            if len(self._buffer) < self.buffer_size:
                self._buffer.append(item)
            else:
                self._buffer[int(self._rng.integers(self.buffer_size))] = item
        batch = new + old
        texts = ["" if self._rng.random() < self.drop_rate else expand(p, self._rng) for _, p in batch]
        return clips_to_pixels([clip for clip, _ in batch]), texts


class EMA:
    """Exponential moving average of a model's parameters, with the usual warm-up of the decay.

    decay_n = min(decay, (1 + n) / (10 + n)) at update n, so early averages are not dominated by
    the random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, p in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(p.detach(), 1 - d)
        self.updates += 1


def train_step(
    model: WorldModel,
    optimizer: torch.optim.Optimizer,
    clean: torch.Tensor,
    texts: Sequence[str],
    generator: torch.Generator,
    max_grad_norm: float = 1.0,
) -> float:
    """One flow-matching step on a batch; returns the loss."""
    noise = torch.randn(clean.shape, generator=generator)
    sigma = logit_normal_sigmas(clean.shape[0], generator)
    s = sigma.view(-1, 1, 1, 1, 1)
    noisy = (1 - s) * clean + s * noise
    pred = model(noisy, sigma, model.encode_text(texts))
    loss = flow_matching_loss(pred, noise, clean)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def benchmark_model(
    model: WorldModel,
    settings: RenderSettings,
    guidance_scale: float,
    num_inference_steps: int = 20,
    num_prompts: int | None = None,
    batch_size: int = 48,
) -> dict[str, float]:
    """The world benchmark (oracle scores, percent) of one sample per benchmark prompt.

    Prompt i is sampled with seed i, so two models are compared on the same noise.
    """
    clips = benchmark_clips(model, settings, guidance_scale, num_inference_steps, num_prompts, batch_size)
    return score_clips([(clip, spec) for _, clip, spec in clips], settings)


@torch.no_grad()
def benchmark_clips(
    model: WorldModel,
    settings: RenderSettings,
    guidance_scale: float,
    num_inference_steps: int = 20,
    num_prompts: int | None = None,
    batch_size: int = 48,
) -> list[tuple[str, np.ndarray, PromptSpec]]:
    """The benchmark's clips, in prompt order: (prompt i's text, its uint8 clip (T, H, W, 3) sampled with
    seed i, its spec)."""
    prompts = benchmark_prompts() if num_prompts is None else benchmark_prompts(num_prompts)
    shape = (3, settings.frames, settings.height, settings.width)
    clips = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        embeds = model.encode_text([text for text, _ in chunk])
        seeds = list(range(start, start + len(chunk)))
        latents = sample_clips(model, embeds, seeds, shape, num_inference_steps, guidance_scale)
        clips.extend(
            (text, clip, spec) for (text, spec), clip in zip(chunk, video_to_uint8(latents), strict=True)
        )
    return clips
