"""The world critic's architecture: a tiny Qwen2-VL built from a config, saved as a local checkpoint.

Qwen2-VL because vLLM serves it (image and video) and real critics of the same class exist, so the
world critic and a production critic go through the same code. `build_critic` writes a folder that
both transformers (`load_critic`) and vLLM (`LLM(model=folder)`) load: ``config.json`` and weights,
the offline tokenizer with its chat template, and the processor (image and video) with every size
option written out, so training and serving preprocess frames identically whatever a library's
defaults become (transformers 5.22 changes ``cap_pixels_per_frame``'s default).

Sizes: vLLM's CPU attention refuses head sizes below 32, so both towers use 32-wide heads.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoProcessor,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from ipo_ray.critic.adapters import is_adapter, read_adapter
from ipo_ray.critic.rope import use_original_mrope
from ipo_ray.critic.tokenizer import (
    CHAT_TEMPLATE,
    EOS,
    IM_END,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    judges_first,
    set_caption_first,
    train_tokenizer,
)

_MIN_HEAD_DIM = 32  # vLLM's CPU attention backend refuses smaller heads


@dataclass(frozen=True)
class CriticArchitecture:
    """Sizes of the tiny Qwen2-VL critic and of the frames it sees.

    Defaults are Qwen2-VL's layout at tiny size (16 frames of 16×16 → a 8×4×4 patch grid → 32 video
    tokens, about 0.5 M parameters), used by tests. `jobs/train_critic.py` builds the world critic
    from `critic.train` instead: patch 2, one temporal patch over all 16 frames (so the vision tower
    sees motion), vision width 128.

    Attributes:
        vocab_size: BPE vocabulary, including 256 bytes and 7 special tokens.
        text_hidden: Language model width.
        text_layers: Language model depth.
        text_heads: Attention heads; text_hidden / text_heads must be ≥ 32.
        text_kv_heads: Key/value heads (grouped-query attention); divides text_heads.
        text_intermediate: MLP width of the language model.
        mrope_section: Rotary pairs given to (temporal, height, width); sums to head_dim / 2.
        vision_depth: Vision tower depth.
        vision_embed: Vision tower width; vision_embed / vision_heads must be ≥ 32.
        vision_heads: Vision attention heads.
        patch_size: Spatial patch in pixels.
        temporal_patch_size: Frames fused into one patch (Qwen2-VL uses 2).
        merge_size: Patches merged per side before the language model (Qwen2-VL uses 2).
        min_pixels: Smallest frame area; smaller frames are upscaled to it (area in pixels).
        max_pixels: Largest frame area; larger frames are downscaled to it.
    """

    vocab_size: int = 512
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 256
    mrope_section: tuple[int, int, int] = (4, 6, 6)
    vision_depth: int = 2
    vision_embed: int = 64
    vision_heads: int = 2
    patch_size: int = 4
    temporal_patch_size: int = 2
    merge_size: int = 2
    min_pixels: int = 16 * 16
    max_pixels: int = 64 * 64

    def __post_init__(self) -> None:
        text_head = self.text_hidden // self.text_heads
        problems = []
        if self.text_hidden % self.text_heads or text_head < _MIN_HEAD_DIM:
            problems.append(
                f"text_hidden/text_heads = {self.text_hidden}/{self.text_heads} must be a whole ≥ 32"
            )
        if self.vision_embed % self.vision_heads or self.vision_embed // self.vision_heads < _MIN_HEAD_DIM:
            problems.append(
                f"vision_embed/vision_heads = {self.vision_embed}/{self.vision_heads} must be a whole ≥ 32"
            )
        if self.text_heads % self.text_kv_heads:
            problems.append(f"text_kv_heads {self.text_kv_heads} must divide text_heads {self.text_heads}")
        if sum(self.mrope_section) * 2 != text_head:
            problems.append(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {text_head // 2}")
        factor = self.patch_size * self.merge_size
        if not factor * factor <= self.min_pixels <= self.max_pixels:
            problems.append(f"need (patch_size*merge_size)^2 = {factor**2} ≤ min_pixels ≤ max_pixels")
        if problems:
            raise ValueError("invalid CriticArchitecture: " + "; ".join(problems))


def build_processor(tokenizer: PreTrainedTokenizerFast, arch: CriticArchitecture) -> Qwen2VLProcessor:
    """The Qwen2-VL processor with every preprocessing option explicit (see the module docstring)."""
    shared = {
        "patch_size": arch.patch_size,
        "temporal_patch_size": arch.temporal_patch_size,
        "merge_size": arch.merge_size,
        "size": {"shortest_edge": arch.min_pixels, "longest_edge": arch.max_pixels},
    }
    video = Qwen2VLVideoProcessor(
        **shared,
        # The caller samples frames (uniformly, `ipo_ray.data.read_frames`); the processor keeps them all.
        do_sample_frames=False,
        # No total-video pixel budget: frame size must not depend on the number of frames.
        cap_pixels_per_frame=False,
        min_frames=1,
    )
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**shared),
        tokenizer=tokenizer,
        video_processor=video,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer: PreTrainedTokenizerFast, arch: CriticArchitecture) -> Qwen2VLConfig:
    """A Qwen2-VL config of `arch` whose special-token ids are the tokenizer's."""
    ids = tokenizer.convert_tokens_to_ids
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": arch.text_hidden,
        "intermediate_size": arch.text_intermediate,
        "num_hidden_layers": arch.text_layers,
        "num_attention_heads": arch.text_heads,
        "num_key_value_heads": arch.text_kv_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": list(arch.mrope_section),
        },
        "bos_token_id": ids(EOS),
        "eos_token_id": ids(IM_END),
        "pad_token_id": ids(EOS),
    }
    vision = {
        "depth": arch.vision_depth,
        "embed_dim": arch.vision_embed,
        "hidden_size": arch.text_hidden,  # the merger's output width = the language model's
        "mlp_ratio": 2,
        "num_heads": arch.vision_heads,
        "patch_size": arch.patch_size,
        "spatial_merge_size": arch.merge_size,
        "temporal_patch_size": arch.temporal_patch_size,
    }
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids(IMAGE_PAD),
        video_token_id=ids(VIDEO_PAD),
        vision_start_token_id=ids(VISION_START),
        vision_end_token_id=ids(VISION_END),
        tie_word_embeddings=False,
    )


def build_critic(
    out_dir: str | os.PathLike[str],
    corpus: list[str],
    arch: CriticArchitecture | None = None,
    seed: int = 0,
    caption_first: bool = False,
) -> Path:
    """Builds a randomly initialised critic with its tokenizer and processor and saves it.

    This is the one way a world critic comes into being: tests call it for a random model, and
    `jobs/train_critic.py` calls it before training from scratch.

    Args:
        out_dir: Folder to write (created; existing files of the same names are overwritten).
        corpus: Texts for the BPE besides the templates: captions, reasons, chain-of-thought.
        arch: Sizes; the defaults fit the world's clips.
        seed: Seeds the weight initialisation.
        caption_first: The critic's prompt layout (`templates.messages`), kept in its tokenizer.

    Returns:
        The folder, loadable by `load_critic` and by vLLM.
    """
    arch = arch or CriticArchitecture()
    out = Path(out_dir)
    tokenizer = train_tokenizer(corpus, arch.vocab_size)
    set_caption_first(tokenizer, caption_first)
    config = build_config(tokenizer, arch)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).float().eval()
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.save_pretrained(out)
    build_processor(tokenizer, arch).save_pretrained(out)
    return out


def load_critic(path: str | os.PathLike[str]) -> tuple[Qwen2VLForConditionalGeneration, Qwen2VLProcessor]:
    """Loads a critic folder in fp32 for transformers, with positions under vLLM's M-RoPE rule.

    See `ipo_ray.critic.rope` for why the rule is swapped: training and transformers scoring must
    see the positions vLLM serves with. A LoRA adapter folder (`ipo_ray.critic.adapters`) loads as
    its base critic with the adapter merged in.
    """
    if is_adapter(path):  # a LoRA adapter version: its base with the adapter merged in
        from peft import PeftModel

        adapter = read_adapter(path)
        base, processor = load_critic(adapter.base)
        return PeftModel.from_pretrained(base, adapter.path).merge_and_unload().eval(), processor
    model = Qwen2VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(path)
    return use_original_mrope(model), processor


def critic_judges_first(path: str | os.PathLike[str]) -> bool:
    """Whether the critic folder answers pairs judge-first (`tokenizer.judges_first`); an adapter
    reads as its base critic."""
    folder = read_adapter(path).base if is_adapter(path) else Path(path)
    return judges_first(AutoTokenizer.from_pretrained(folder))


def deepen_critic(src: str | os.PathLike[str], out_dir: str | os.PathLike[str], extra_layers: int) -> Path:
    """Writes `src` with `extra_layers` more language-model layers on top that start as the identity.

    Each new decoder layer's attention output and MLP down projections are zero, so both residual
    branches add nothing: the deeper critic answers exactly as `src` did, and fine-tuning grows
    the new layers from there (function-preserving growth, like a LoRA's zero B matrix). A trained
    critic keeps what it learned while gaining depth for what two layers could not learn (the world
    critic's pairwise questions compare two videos with the caption).

    Args:
        src: A critic folder (not an adapter: deepen its merged base instead).
        out_dir: Folder to write (created); tokenizer and processor files are copied from `src`.
        extra_layers: Decoder layers to add, ≥ 1.

    Returns:
        The folder, loadable by `load_critic` and by vLLM.

    Raises:
        ValueError: `extra_layers` < 1, or `src` is an adapter or not a critic folder.
    """
    if extra_layers < 1:
        raise ValueError(f"extra_layers must be ≥ 1, got {extra_layers}")
    if is_adapter(src) or not (Path(src) / "config.json").is_file():
        raise ValueError(f"{src}: not a full critic folder (deepen an adapter's merged base instead)")
    model = Qwen2VLForConditionalGeneration.from_pretrained(src, dtype=torch.float32)
    config = model.config
    text = config.text_config
    depth = text.num_hidden_layers
    text.num_hidden_layers = depth + extra_layers
    text.layer_types = [*text.layer_types, *([text.layer_types[-1]] * extra_layers)]
    deeper = Qwen2VLForConditionalGeneration(config).float().eval()
    missing, unexpected = deeper.load_state_dict(model.state_dict(), strict=False)
    new = {f".layers.{i}." for i in range(depth, depth + extra_layers)}
    if unexpected or not all(any(n in key for n in new) for key in missing):
        raise RuntimeError(f"deepening {src}: unexpected {unexpected}, missing {missing}")
    for layer in deeper.model.language_model.layers[depth:]:
        torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
        torch.nn.init.zeros_(layer.mlp.down_proj.weight)
    deeper.generation_config = model.generation_config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():  # tokenizer, processor and chat template, byte for byte
        if f.is_file() and f.name not in _NOT_COPIED_WHEN_DEEPENED:
            shutil.copyfile(f, out / f.name)
    deeper.save_pretrained(out)
    return out


def relayout_critic(
    src: str | os.PathLike[str], out_dir: str | os.PathLike[str], caption_first: bool
) -> Path:
    """Writes a copy of the critic folder `src` whose prompt layout is `caption_first`.

    Fine-tuning from the copy teaches the critic the new layout (`templates.messages`); the weights
    are unchanged, so before that it answers as `src` would to a differently laid-out prompt.

    Raises:
        ValueError: `src` is an adapter or not a critic folder.
    """
    if is_adapter(src) or not (Path(src) / "config.json").is_file():
        raise ValueError(f"{src}: not a full critic folder (change the layout of its merged base instead)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():
        if f.is_file() and f.name not in {"critic_manifest.json", "README.md"}:
            shutil.copyfile(f, out / f.name)
    tokenizer = AutoTokenizer.from_pretrained(out)
    set_caption_first(tokenizer, caption_first)
    tokenizer.save_pretrained(out)
    return out


# Weights and config are rewritten; a manifest or README describes the source critic, not this one.
_NOT_COPIED_WHEN_DEEPENED = frozenset(
    {"config.json", "model.safetensors", "critic_manifest.json", "README.md"}
)
