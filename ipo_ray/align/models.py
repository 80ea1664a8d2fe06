"""Adapters between the training step and the diffusers video transformers, and reference models.

A :class:`Denoiser` knows one model family's forward signature, latent layout and parametrisation, so
the step never branches on the architecture:

- CogVideoX (``CogVideoXTransformer3DModel``): latents (B, F, C, H, W), integer timesteps, v-prediction;
  configs with rotary embeddings (5B) get the 3D RoPE the pipeline would build for the latents' size.
- Wan (``WanTransformer3DModel``): latents (B, C, F, H, W), timestep 1000·σ, flow matching.

The reference policy is either a frozen copy of the policy or, when the policy carries LoRA adapters
(diffusers ``model.add_adapter(peft.LoraConfig(...))``), the policy itself with its adapters disabled
during the reference forward, so no second copy of the weights is held (as diffusers' DPO example and
the diffusion-kto reference do).
"""

import copy
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import CogVideoXTransformer3DModel, WanTransformer3DModel
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import Tensor, nn

from ipo_ray.align.targets import DDPMParametrisation, FlowMatchingParametrisation, Parametrisation

# (model, x_t, timesteps (B,), text_embeds (B, S, D)) -> prediction shaped like x_t
ForwardFn = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Denoiser:
    """One model family: how to call it and what it is trained to predict.

    Args:
        forward: calls the model on noisy latents, timesteps and text embeddings.
        parametrisation: noising and regression target (see ``ipo_ray.align.targets``).
    """

    forward: ForwardFn
    parametrisation: Parametrisation


def cogvideox_rotary_embedding(
    config: Any, frames: int, height: int, width: int, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """CogVideoX 1.0's 3D RoPE for latents of F × h × w, as ``CogVideoXPipeline`` builds it for sampling.

    The pipeline's ``_prepare_rotary_positional_embeddings`` needs a loaded pipeline (its VAE's scale
    factor) and pixel sizes; training holds latents only. In latent units its token grid is h/p × w/p,
    placed by resize-and-centre-crop inside the grid the model was trained at (``sample_height`` ×
    ``sample_width`` latents), so a latent size other than that still gets the positions sampling gave.

    Args:
        config: a ``CogVideoXTransformer3DModel`` config (``patch_size_t`` unset: CogVideoX 1.0).
        frames, height, width: the latents' F, h, w (h and w multiples of ``patch_size``).
        device: where to build the tables.

    Returns:
        (cos, sin), each (F·(h/p)·(w/p), attention_head_dim) float32, the transformer's ``image_rotary_emb``.
    """
    if config.patch_size_t is not None:
        raise ValueError(
            "CogVideoX 1.5 (patch_size_t set) pads latent frames; only CogVideoX 1.0 is supported"
        )
    p = config.patch_size
    grid = (height // p, width // p)
    crop = get_resize_crop_region_for_grid(grid, config.sample_width // p, config.sample_height // p)
    return get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=crop,
        grid_size=grid,
        temporal_size=frames,
        device=device,
    )


def _cogvideox_forward(
    model: nn.Module, x_t: Tensor, timesteps: Tensor, text_embeds: Tensor, rotary_config: Any = None
) -> Tensor:
    rotary = None
    if rotary_config is not None:  # x_t is (B, F, C, h, w)
        frames, _, height, width = x_t.shape[1:]
        rotary = cogvideox_rotary_embedding(rotary_config, frames, height, width, x_t.device)
    return model(
        hidden_states=x_t,
        encoder_hidden_states=text_embeds,
        timestep=timesteps,
        image_rotary_emb=rotary,
        return_dict=False,
    )[0]


def _wan_forward(model: nn.Module, x_t: Tensor, timesteps: Tensor, text_embeds: Tensor) -> Tensor:
    return model(hidden_states=x_t, timestep=timesteps, encoder_hidden_states=text_embeds, return_dict=False)[
        0
    ]


def cogvideox_denoiser(model: CogVideoXTransformer3DModel, alphas_cumprod: Tensor) -> Denoiser:
    """CogVideoX: v-prediction on the scheduler's ᾱ_t (pass ``scheduler.alphas_cumprod``).

    With rotary embeddings (5B) every forward passes :func:`cogvideox_rotary_embedding` of its latents'
    size; the config is read here, from the unwrapped model, since a DDP or DeepSpeed wrapper hides it.

    Raises:
        ValueError: a CogVideoX 1.5 config (``patch_size_t`` set): the generator does not sample 1.5, and
            its latent frames would need the pipeline's padding.
    """
    config = model.config
    if config.patch_size_t is not None:
        raise ValueError("CogVideoX 1.5 (patch_size_t set) is not supported; use a CogVideoX 1.0 (2B, 5B)")
    rotary = config if config.use_rotary_positional_embeddings else None
    forward = functools.partial(_cogvideox_forward, rotary_config=rotary)
    return Denoiser(forward, DDPMParametrisation(alphas_cumprod.float(), "v_prediction"))


def wan_denoiser(model: WanTransformer3DModel, shift: float = 1.0) -> Denoiser:
    """Wan: flow matching, x_t = (1−σ)x₀ + σε, target ε − x₀, timestep 1000·σ."""
    del model  # the signature is the family's; kept for symmetry with cogvideox_denoiser
    return Denoiser(_wan_forward, FlowMatchingParametrisation(shift=shift))


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute each transformer block's activations in the backward pass instead of keeping them.

    diffusers' own switch: non-reentrant ``torch.utils.checkpoint``, so DDP, ZeRO and LoRA work, and it
    acts only where gradients are on (the reference forward under ``no_grad`` is untouched). Costs one
    more forward of the blocks per backward; keeps one block's activations instead of every block's,
    which a full-size CogVideoX or Wan at production resolution needs to train at all.

    Raises:
        ValueError: the model has no gradient checkpointing (not a diffusers model that supports it).
    """
    enable = getattr(model, "enable_gradient_checkpointing", None)
    if enable is None or not getattr(model, "_supports_gradient_checkpointing", False):
        raise ValueError(
            f"{type(model).__name__} does not support gradient checkpointing; "
            "set align.gradient_checkpointing=false"
        )
    enable()


def has_lora(model: nn.Module) -> bool:
    """Whether any module of ``model`` is a peft tuner layer (LoRA adapters attached)."""
    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


class FrozenCopyReference:
    """A deep copy of the policy taken at construction, in eval mode and without gradients.

    ``with reference() as ref_model`` yields the copy.
    """

    def __init__(self, policy: nn.Module) -> None:
        self.module = copy.deepcopy(policy).eval().requires_grad_(False)

    @contextmanager
    def __call__(self) -> Iterator[nn.Module]:
        yield self.module


class AdapterDisabledReference:
    """The policy's base weights: its LoRA adapters are switched off for the reference forward.

    ``self.module`` IS the policy (the unwrapped one when training under DDP); no weights are copied.

    Args:
        policy: a diffusers model with LoRA adapters added (``model.add_adapter(LoraConfig(...))``).
    """

    def __init__(self, policy: nn.Module) -> None:
        if not has_lora(policy):
            raise ValueError(
                "reference 'lora' needs a policy with LoRA adapters "
                "(model.add_adapter(peft.LoraConfig(...))); use reference 'frozen_copy' for full fine-tuning"
            )
        self.module = policy

    @contextmanager
    def __call__(self) -> Iterator[nn.Module]:
        self.module.disable_adapters()
        try:
            yield self.module
        finally:
            self.module.enable_adapters()


Reference = FrozenCopyReference | AdapterDisabledReference
REFERENCES: dict[str, Callable[[nn.Module], Reference]] = {
    "frozen_copy": FrozenCopyReference,
    "lora": AdapterDisabledReference,
}
