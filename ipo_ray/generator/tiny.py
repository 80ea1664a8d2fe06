"""Tiny random CogVideoX and Wan pipelines, built from configs offline, for tests and CPU benches.

Nothing is fetched: the tokenizer is a byte-level BPE trained here with `tokenizers` and wrapped in
`PreTrainedTokenizerFast` (a home-made sentencepiece model behind `T5Tokenizer` silently gave a
4-token vocabulary). The sizes mirror diffusers' own pipeline tests: 1–2 transformer layers, VAEs
with a handful of channels, 2-layer T5/UMT5 encoders. Weights are random, so outputs are noise; the
point is that every real code path (save_pretrained → from_pretrained → sample) runs in seconds.
"""

from collections.abc import Iterable
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    AutoencoderKLWan,
    CogVideoXDPMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
    WanPipeline,
    WanTransformer3DModel,
)
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

TEXT_DIM = 32
TEXT_LEN = 24  # tokens per prompt; CogVideoX's max_text_seq_length must equal it
_CORPUS = [
    "A small red circle glides slowly to the left across a dark blue background.",
    "A large green square bounces quickly upward over a striped grey floor.",
    "Two yellow triangles grow while drifting right on a white background.",
]


def tiny_tokenizer(vocab_size: int = 400, corpus: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with T5's special tokens (pad id 0, eos, unk), trained offline.

    Args:
        vocab_size: Vocabulary including the 256 byte symbols and 3 special tokens.
        corpus: Texts to learn merges from; None = three fixed sentences (enough for tests). Any text
            still tokenises, byte by byte where no merge applies.
    """
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],  # <pad> first: T5 uses pad id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS if corpus is None else corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def build_tiny_cogvideox(seed: int = 0, num_layers: int = 1, rotary: bool = False) -> CogVideoXPipeline:
    """A random CogVideoX 1.0 pipeline: 16×16 px → 2×2 latents, patch 2, 9 frames → 3 latent frames.

    `rotary` gives CogVideoX-5B's layout: 3D rotary position embeddings instead of 2B's sin-cos ones,
    and a 2:3 native grid (5B: 60×90 latents, here 4×6 = 32×48 px) so that other sizes exercise the
    pipeline's resize-and-crop of the RoPE grid; sample it at ≥ 32 px for more than one token per frame.
    """
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            decoder_start_token_id=0,
        )
    )
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=16 if rotary else 8,  # RoPE splits a head over 3 axes: 8 is too narrow
        in_channels=4,
        out_channels=4,
        time_embed_dim=4,
        text_embed_dim=TEXT_DIM,
        num_layers=num_layers,
        sample_width=6 if rotary else 2,
        sample_height=4 if rotary else 2,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=TEXT_LEN,
        use_rotary_positional_embeddings=rotary,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    scheduler = CogVideoXDPMScheduler(prediction_type="v_prediction", timestep_spacing="trailing")
    return CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def build_tiny_wan(seed: int = 0, num_layers: int = 2) -> WanPipeline:
    """A random Wan 2.1 pipeline: 16×16 px → 2×2 latents, patch (1, 2, 2), 9 frames → 3 latent frames."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            decoder_start_token_id=0,
        )
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def save_tiny_pipelines(root: str | Path) -> dict[str, Path]:
    """Saves both tiny pipelines under `root` and returns {"cogvideox": path, "wan": path}."""
    root = Path(root)
    paths = {"cogvideox": root / "tiny-cogvideox", "wan": root / "tiny-wan"}
    build_tiny_cogvideox().save_pretrained(paths["cogvideox"])
    build_tiny_wan().save_pretrained(paths["wan"])
    return paths
