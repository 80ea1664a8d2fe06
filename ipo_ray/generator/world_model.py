"""The embedded world's own text-to-video model: Wan's transformer at small size, in pixel space.

Design (facts behind it: ``shared/notes/cpu-stack.md``, "A second generator trial"):

- **Pixel space, no VAE.** A world clip is 4 frames of 16×16 RGB; the clip itself, scaled from
  uint8 to [-1, 1] and laid out (C=3, F, H, W), is the "latent" the transformer denoises. Encoding
  and decoding are exact rescalings, so the saved latents of a candidate *are* its video.
- **`WanTransformer3DModel` with a temporal patch covering the whole clip** (patch (F, 4, 4): one
  token holds 4 frames of a 4×4 tile, like a video VAE folding 4 frames into one latent frame) and
  ≥ 8 heads × 32. With temporal patch 1 the trials never learned direction of motion; this one did
  within minutes. A 128-wide model could not carry the 192 values of a patch.
- **A 2-layer `T5EncoderModel`** built from a config, trained jointly with the transformer, on an
  offline byte-level BPE tokenizer: `tiny.tiny_tokenizer` given a corpus of world prompts
  (`world_tokenizer`). On `tiny_tokenizer`'s own 3-sentence corpus a world prompt takes ~42 tokens
  (up to ~100) and the text side made a training step 3× slower; on world prompts every word is one
  token (≤ 32 per prompt). Prompts are padded
  to a fixed `max_sequence_length` and padded positions are zeroed, as `WanPipeline` does; the
  empty prompt is therefore all zeros, which is the unconditional input of classifier-free guidance.
- **Flow matching** (rectified flow): x_σ = (1 − σ)·x₀ + σ·ε, the transformer predicts ε − x₀ at
  timestep 1000·σ, σ logit-normal in training; sampling with `FlowMatchEulerDiscreteScheduler`.

A checkpoint folder (`save_world_model` / `load_world_model`)::

    transformer/      WanTransformer3DModel.save_pretrained (fp16 weights; loaded as float32)
    text_encoder/     T5EncoderModel.save_pretrained (fp16 weights; loaded as float32)
    tokenizer/        PreTrainedTokenizerFast.save_pretrained
    scheduler/        FlowMatchEulerDiscreteScheduler config
    world_generator.json   {"_class_name": "WorldGenerator", size, render settings, sequence length,
                            training stats}

`WorldGenerator` is the backend: the same `sample(...)` contract as `WanGenerator`, loading the
shipped small checkpoint by default.
"""

import copy
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from ipo_ray.generator.loading import read_json
from ipo_ray.generator.tiny import tiny_tokenizer
from ipo_ray.generator.types import (
    GeneratorError,
)
from ipo_ray.world.geometry import RenderSettings
from ipo_ray.world.prompts import sample_prompts

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "world_generator"
DEFAULT_CHECKPOINT = ASSETS_DIR / "small"
META_FILE = "world_generator.json"
CLASS_NAME = "WorldGenerator"
FORMAT_VERSION = 1
PATCH_HW = 4  # pixels per token side
MAX_SEQUENCE_LENGTH = 32  # tokens; world prompts take ≤ 28 with `world_tokenizer` (mean 16)
TOKENIZER_CORPUS_SIZE = 3000  # world prompts the tokenizer is trained on


@dataclass(frozen=True)
class WorldModelSize:
    """Architecture of one world model size.

    Attributes:
        num_layers: Transformer blocks.
        num_heads: Attention heads; each 32 wide (Wan's RoPE splits a head over t, h, w).
        ffn_dim: Hidden width of each block's feed-forward layer.
        text_dim: T5 width (``d_model``); Wan projects it to the transformer's width.
        text_layers: T5 encoder layers.
        text_ffn_dim: T5 feed-forward width.
    """

    num_layers: int
    num_heads: int
    ffn_dim: int
    text_dim: int = 128
    text_layers: int = 2
    text_ffn_dim: int = 256

    HEAD_DIM = 32


# small: the notes' 3.9M-parameter transformer (width 256, 4 blocks); large: 2.4× its parameters
# (width 384, 4 blocks, wider feed-forward), the most that fits 20 MB as fp16 with its text encoder.
SIZES: dict[str, WorldModelSize] = {
    "small": WorldModelSize(num_layers=4, num_heads=8, ffn_dim=512),
    "large": WorldModelSize(num_layers=4, num_heads=12, ffn_dim=1024),
}


class WorldModel(torch.nn.Module):
    """Text encoder + transformer of the world generator, trained together.

    Args:
        transformer: Pixel-space `WanTransformer3DModel` (in/out channels 3).
        text_encoder: `T5EncoderModel` whose width is the transformer's ``text_dim``.
        tokenizer: The tokenizer of `text_encoder` (pad id 0).
        max_sequence_length: Every prompt is padded to this many tokens.
    """

    def __init__(
        self,
        transformer: WanTransformer3DModel,
        text_encoder: T5EncoderModel,
        tokenizer: PreTrainedTokenizerFast,
        max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.max_sequence_length = max_sequence_length

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Text embeddings (B, L, D), zero beyond each prompt's tokens; "" gives all zeros.

        Raises:
            GeneratorError: A prompt has more than `max_sequence_length` tokens (it is not truncated).
        """
        tokens = self.tokenizer(
            list(texts),
            padding="max_length",
            max_length=self.max_sequence_length,
            truncation=False,
            return_tensors="pt",
        )
        if tokens.input_ids.shape[1] != self.max_sequence_length:
            lengths = tokens.attention_mask.sum(1).tolist()
            raise GeneratorError(
                f"a prompt has {max(lengths)} tokens, more than max_sequence_length="
                f"{self.max_sequence_length}; shorten it"
            )
        device = next(self.text_encoder.parameters()).device
        mask = tokens.attention_mask.to(device)
        hidden = self.text_encoder(
            input_ids=tokens.input_ids.to(device), attention_mask=mask
        ).last_hidden_state
        return hidden * mask[..., None].to(hidden.dtype)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """Predicted flow velocity ε − x₀.

        Args:
            x: Noisy clips (B, 3, F, H, W) at noise level `sigma`.
            sigma: Noise levels (B,) in [0, 1]; the transformer sees timestep 1000·σ.
            text_embeds: (B, L, D) from `encode_text`.

        Returns:
            (B, 3, F, H, W).
        """
        return self.transformer(
            hidden_states=x, timestep=sigma * 1000.0, encoder_hidden_states=text_embeds, return_dict=False
        )[0]


def world_tokenizer(vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """`tiny.tiny_tokenizer` trained on a fixed sample of world prompts (pad id 0, as T5's)."""
    return tiny_tokenizer(vocab_size, [text for text, _ in sample_prompts(TOKENIZER_CORPUS_SIZE, seed=12345)])


def build_world_model(size: str, settings: RenderSettings, seed: int = 0) -> WorldModel:
    """A freshly initialised world model of a named size (`SIZES`) for clips of `settings`.

    Raises:
        GeneratorError: Unknown size, or a frame size that 4×4 patches do not tile.
    """
    if size not in SIZES:
        raise GeneratorError(f"unknown world model size {size!r}; choose one of {sorted(SIZES)}")
    return build_world_model_from(SIZES[size], settings, seed)


def build_world_model_from(arch: WorldModelSize, settings: RenderSettings, seed: int = 0) -> WorldModel:
    """A freshly initialised world model of architecture `arch` (tests build tiny ones this way)."""
    if settings.height % PATCH_HW or settings.width % PATCH_HW:
        raise GeneratorError(
            f"frame size {settings.height}x{settings.width} must be a multiple of the {PATCH_HW}-pixel patch"
        )
    torch.manual_seed(seed)
    tokenizer = world_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=arch.text_dim,
            d_kv=32,
            d_ff=arch.text_ffn_dim,
            num_layers=arch.text_layers,
            num_heads=arch.text_dim // 32,
            relative_attention_num_buckets=16,
            dropout_rate=0.0,
            pad_token_id=0,
            decoder_start_token_id=0,
        )
    )
    transformer = WanTransformer3DModel(
        patch_size=(settings.frames, PATCH_HW, PATCH_HW),  # one token = the whole clip over a 4×4 tile
        num_attention_heads=arch.num_heads,
        attention_head_dim=WorldModelSize.HEAD_DIM,
        in_channels=3,
        out_channels=3,
        text_dim=arch.text_dim,
        freq_dim=256,
        ffn_dim=arch.ffn_dim,
        num_layers=arch.num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=64,
    )
    return WorldModel(transformer, text_encoder, tokenizer)


def count_parameters(model: WorldModel) -> dict[str, int]:
    """{"transformer": n, "text_encoder": n, "total": n}."""
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("transformer", "text_encoder")
    }
    return counts | {"total": sum(counts.values())}


def make_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """The sampler of the world model: Euler on the flow, no timestep shift (16×16 px needs none)."""
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def save_world_model(
    path: str | os.PathLike[str],
    model: WorldModel,
    settings: RenderSettings,
    *,
    size: str,
    training: dict[str, Any],
    weights_dtype: torch.dtype = torch.float16,
) -> Path:
    """Writes a checkpoint folder, replacing any previous one at `path` (see the module docstring).

    Weights are stored as float16 by default (halves the size; `load_world_model` returns float32);
    aligned versions pass ``weights_dtype=torch.float32``, since a few small fine-tuning steps are
    below float16's resolution of the weights and would be partly rounded away. The folder
    is written under a temporary name beside `path` and renamed into place, so a reader sees the
    old checkpoint or the new one, never a half-written one.

    Args:
        path: The checkpoint folder.
        model: The model to save (left unchanged).
        settings: Render settings of the clips it was trained on.
        size: Size name recorded in the metadata.
        training: Training statistics to record (steps, minutes, loss, ...); JSON-serialisable.
        weights_dtype: Storage dtype of the weights (float16 or float32).

    Returns:
        `path` as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        _half_copy(model.transformer, weights_dtype).save_pretrained(tmp / "transformer")
        _half_copy(model.text_encoder, weights_dtype).save_pretrained(tmp / "text_encoder")
        model.tokenizer.save_pretrained(tmp / "tokenizer")
        make_scheduler().save_pretrained(tmp / "scheduler")
        meta = {
            "_class_name": CLASS_NAME,
            "format_version": FORMAT_VERSION,
            "size": size,
            "latents": "pixels: uint8 clip (T, H, W, 3) as (3, T, H, W) float in [-1, 1] = x / 127.5 - 1",
            "max_sequence_length": model.max_sequence_length,
            "render_settings": asdict(settings),
            "parameters": count_parameters(model),
            "training": training,
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def _half_copy(module: torch.nn.Module, dtype: torch.dtype = torch.float16) -> torch.nn.Module:
    """A copy in a storage dtype (float16 by default) only: it is loaded back as float32, so fp16
    compute never happens.

    Cast parameter by parameter: ``module.to(float16)`` warns that Wan keeps some modules in float32,
    which matters for fp16 compute, not for storage.
    """
    half = copy.deepcopy(module)
    for param in half.parameters():
        param.data = param.data.to(dtype)
    return half


def read_world_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a checkpoint folder, checked to be a world generator's.

    Raises:
        GeneratorError: Missing folder, or a folder of another model type; the message says what to do.
    """
    path = Path(path)
    if not path.is_dir():
        raise GeneratorError(
            f"world generator checkpoint {str(path)!r} is not a folder; train one with "
            f"jobs/pretrain_world_generator.py or point the path at {ASSETS_DIR}/<size>"
        )
    meta_path = path / META_FILE
    if not meta_path.is_file():
        hint = ""
        if (path / "model_index.json").is_file():
            found = read_json(path / "model_index.json").get("_class_name")
            hint = f" (it holds a diffusers {found!r} pipeline: use the matching backend for it)"
        raise GeneratorError(
            f"{path} holds no {META_FILE}, so it is not a world generator checkpoint{hint}; point the path "
            f"at a folder written by jobs/pretrain_world_generator.py"
        )
    meta = read_json(meta_path)
    if meta.get("_class_name") != CLASS_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise GeneratorError(
            f"{meta_path} describes {meta.get('_class_name')!r} format {meta.get('format_version')!r}, not "
            f"{CLASS_NAME!r} format {FORMAT_VERSION}; retrain with jobs/pretrain_world_generator.py"
        )
    return meta


def load_world_model(path: str | os.PathLike[str]) -> tuple[WorldModel, RenderSettings, dict[str, Any]]:
    """Loads a checkpoint folder as float32.

    Returns:
        (model in eval mode, the render settings it was trained on, the metadata dict).

    Raises:
        GeneratorError: See `read_world_meta`.
    """
    path = Path(path)
    meta = read_world_meta(path)
    transformer = WanTransformer3DModel.from_pretrained(path / "transformer", torch_dtype=torch.float32)
    text_encoder = T5EncoderModel.from_pretrained(path / "text_encoder", dtype=torch.float32)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path / "tokenizer")
    model = WorldModel(transformer, text_encoder, tokenizer, int(meta["max_sequence_length"]))
    return model.eval(), RenderSettings(**meta["render_settings"]), meta
