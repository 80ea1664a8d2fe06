"""Each generator backend as alignment sees it: how to build its trainable transformer from a model
folder, its denoiser, its latent shape, and how to export a trained transformer in the backend's own
format so that the next round's ``GeneratorActor`` loads it unchanged.

- ``world``: the embedded world's checkpoint folder (``ipo_ray/generator/world_model.py``). Only the
  transformer is trained: prompt embeddings are cached by the generation stage, so training never
  runs the T5, and an aligned version carries its parent's text encoder and tokenizer unchanged.
- ``cogvideox`` / ``wan``: a diffusers pipeline folder; the new ``transformer/`` is written with
  ``save_pretrained`` and the other components (VAE, text encoder, tokenizer, scheduler) are linked
  from the parent folder rather than copied (a real T5-XXL is ~9 GB).

LoRA (reference ``lora``) adds adapters to the attention projections; the export merges them into the
base weights and removes the adapter layers, so every version is a plain full checkpoint.

Builders are module-level functions bound with ``functools.partial`` so Ray can pickle them to the
workers by reference.
"""

import functools
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    CogVideoXDDIMScheduler,
    CogVideoXTransformer3DModel,
    WanTransformer3DModel,
)
from peft import LoraConfig
from torch import nn

from ipo_ray.align.models import Denoiser, cogvideox_denoiser, has_lora, wan_denoiser
from ipo_ray.generator.loading import read_json, resolve_pipeline_dir
from ipo_ray.generator.world_model import load_world_model, read_world_meta, save_world_model

BACKENDS = ("world", "cogvideox", "wan")
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # attention projections of both families
_PIPELINES = {"cogvideox": "CogVideoXPipeline", "wan": "WanPipeline"}


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown generator backend {backend!r}; use one of {list(BACKENDS)}")


def load_transformer(backend: str, model_dir: str) -> nn.Module:
    """The backend's transformer from a model folder, float32, in train mode."""
    _check_backend(backend)
    if backend == "world":
        return load_world_model(model_dir)[0].transformer.train()
    cls = CogVideoXTransformer3DModel if backend == "cogvideox" else WanTransformer3DModel
    path = resolve_pipeline_dir(model_dir, _PIPELINES[backend]) / "transformer"
    return cls.from_pretrained(path, torch_dtype=torch.float32).train()


def with_lora(build: Callable[[], nn.Module], rank: int) -> nn.Module:
    """``build()`` with its base weights frozen and LoRA adapters (rank r, α = r) on attention."""
    model = build().requires_grad_(False)
    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS))
    return model


def make_denoiser(model: nn.Module, backend: str, model_dir: str) -> Denoiser:
    """The denoiser of a built transformer: flow matching (world, Wan) or v-prediction (CogVideoX)."""
    _check_backend(backend)
    if backend == "world":
        return wan_denoiser(model, shift=1.0)  # the world sampler uses no shift (make_scheduler)
    scheduler = read_json(
        resolve_pipeline_dir(model_dir, _PIPELINES[backend]) / "scheduler" / "scheduler_config.json"
    )
    if backend == "cogvideox":
        alphas = CogVideoXDDIMScheduler.from_config(scheduler).alphas_cumprod
        return cogvideox_denoiser(model, alphas)
    return wan_denoiser(model, shift=float(scheduler.get("flow_shift", scheduler.get("shift", 1.0))))


def builders(
    backend: str, model_dir: str | os.PathLike[str], lora_rank: int | None = None
) -> tuple[Callable[[], nn.Module], Callable[[nn.Module], Denoiser]]:
    """Picklable (build_policy, build_denoiser) for the Ray loop; LoRA adapters when ``lora_rank``."""
    model_dir = str(model_dir)
    build = functools.partial(load_transformer, backend, model_dir)
    if lora_rank is not None:
        build = functools.partial(with_lora, build, lora_rank)
    return build, functools.partial(make_denoiser, backend=backend, model_dir=model_dir)


def latent_shape(backend: str, model_dir: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """The shape of one sample's latents where the model fixes it: world (3, F, H, W); else None."""
    _check_backend(backend)
    if backend != "world":
        return None  # diffusers models take any resolution their patching divides
    settings = read_world_meta(model_dir)["render_settings"]
    return (3, settings["frames"], settings["height"], settings["width"])


def merged(model: nn.Module) -> nn.Module:
    """The model with LoRA adapters fused into the base weights and the adapter layers removed."""
    if has_lora(model):
        model.fuse_lora()
        model.unload_lora()
    return model


def export_generator(
    backend: str,
    model: nn.Module,
    parent_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    alignment: dict[str, Any],
) -> Path:
    """Writes a trained transformer as a full model folder of the backend's format at ``out_dir``.

    Args:
        backend: ``world``, ``cogvideox`` or ``wan``.
        model: the trained transformer (LoRA adapters are merged first; the module is modified).
        parent_dir: the folder training started from; its other components are reused.
        out_dir: the new version's folder (replaced if present).
        alignment: what to record of the training (world: under ``training.alignment`` of the meta).

    Returns:
        ``out_dir`` as a Path.
    """
    _check_backend(backend)
    model = merged(model).eval()
    out_dir = Path(out_dir)
    if backend == "world":
        world, settings, meta = load_world_model(parent_dir)
        world.transformer.load_state_dict(model.state_dict())
        history = [*meta["training"].get("alignment", []), alignment]
        training = {k: v for k, v in meta["training"].items() if k != "benchmark"} | {"alignment": history}
        # float32: a round's few small steps are below float16's resolution of the weights.
        return save_world_model(
            out_dir, world, settings, size=meta["size"], training=training, weights_dtype=torch.float32
        )
    parent = resolve_pipeline_dir(parent_dir, _PIPELINES[backend])
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp / "transformer")
        for entry in parent.iterdir():
            if entry.name == "transformer":
                continue
            if entry.is_dir():  # unchanged components: link, never copy gigabytes
                (tmp / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
            else:
                shutil.copy2(entry, tmp / entry.name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
