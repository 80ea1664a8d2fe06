"""Tiny random-initialised video transformers of the real architectures, from configs (never fetched)."""

import pyarrow as pa
import pytest
import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXTransformer3DModel, WanTransformer3DModel

from ipo_ray.align.real import RealClips
from ipo_ray.data import columns as col
from ipo_ray.data import make_table
from ipo_ray.generator.files import save_latents, save_prompt_embeds

# CogVideoX latents (B, F, C, H, W); text (B, S, D) with S = max_text_seq_length, as the pipeline pads.
COG_LATENT = (2, 4, 8, 8)
COG_TEXT = (8, 8)
# Wan latents (B, C, F, H, W).
WAN_LATENT = (4, 2, 8, 8)
WAN_TEXT = (6, 16)


# A 1-layer CogVideoX-2B-style transformer (learned positions), ~5k parameters.
TINY_COGVIDEOX = dict(
    num_attention_heads=2,
    attention_head_dim=8,
    in_channels=4,
    out_channels=4,
    time_embed_dim=2,
    text_embed_dim=8,
    num_layers=1,
    sample_width=8,
    sample_height=8,
    sample_frames=5,  # 1 + 4·(latent frames − 1) with temporal compression 4 → 2 latent frames
    patch_size=2,
    temporal_compression_ratio=4,
    max_text_seq_length=8,
)


# The same at CogVideoX-5B's layout: 3D rotary positions instead of learned ones (so a head wide enough
# for RoPE's split over frames, rows and columns) and a 2:3 native grid (5B: 60×90 latents) other than
# COG_LATENT's 8×8, so its RoPE grid is resized and cropped as the pipeline does.
TINY_COGVIDEOX_5B = TINY_COGVIDEOX | dict(
    attention_head_dim=16, sample_height=4, sample_width=6, use_rotary_positional_embeddings=True
)


def tiny_cogvideox(seed: int = 0) -> CogVideoXTransformer3DModel:
    torch.manual_seed(seed)
    return CogVideoXTransformer3DModel(**TINY_COGVIDEOX)


def tiny_wan(seed: int = 0) -> WanTransformer3DModel:
    """A 1-layer Wan transformer with the diffusers test config, ~19k parameters."""
    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=4,
        out_channels=4,
        text_dim=16,
        freq_dim=256,
        ffn_dim=32,
        num_layers=1,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


def cogvideox_alphas_cumprod() -> torch.Tensor:
    """ᾱ_t of a CogVideoX-style scheduler (zero terminal SNR, SNR shift 3)."""
    return CogVideoXDDIMScheduler(rescale_betas_zero_snr=True, prediction_type="v_prediction").alphas_cumprod


@pytest.fixture
def cog() -> CogVideoXTransformer3DModel:
    return tiny_cogvideox()


@pytest.fixture
def wan() -> WanTransformer3DModel:
    return tiny_wan()


@pytest.fixture
def make_cogvideox():
    """Factory: ``make_cogvideox(seed)`` → a fresh tiny CogVideoX transformer."""
    return tiny_cogvideox


@pytest.fixture(scope="session")
def alphas_cumprod() -> torch.Tensor:
    return cogvideox_alphas_cumprod()


@pytest.fixture
def shapes() -> dict[str, tuple[int, ...]]:
    return {"cog_latent": COG_LATENT, "cog_text": COG_TEXT, "wan_latent": WAN_LATENT, "wan_text": WAN_TEXT}


@pytest.fixture(scope="session")
def tiny_cogvideox_config() -> dict:
    return dict(TINY_COGVIDEOX)


def _planted_samples(directory, n: int, desirable: tuple[bool, ...] | None = None) -> pa.Table:
    """A samples table of n random latents of one prompt (absolute paths); every other one desirable
    unless ``desirable`` gives the n labels."""
    if desirable is not None and len(desirable) != n:
        raise ValueError(f"need {n} desirable labels, got {len(desirable)}")
    g = torch.Generator().manual_seed(0)
    save_prompt_embeds(
        directory / "p0.safetensors", torch.randn(COG_TEXT, generator=g), prompt="p0", version="t"
    )
    rows = []
    for i in range(n):
        save_latents(
            directory / f"s{i}.safetensors", torch.randn(COG_LATENT, generator=g), version="t", seed=None
        )
        rows.append(
            {
                col.CANDIDATE_ID: f"s{i}",
                col.PROMPT_ID: "p0",
                col.PROMPT: "a prompt",
                col.LATENT_PATH: str(directory / f"s{i}.safetensors"),
                col.PROMPT_EMBEDS_PATH: str(directory / "p0.safetensors"),
                col.REWARD: 0.5,
                col.DESIRABLE: i % 2 == 0 if desirable is None else desirable[i],
                col.PASSES: True,
                col.ROUND: 0,
            }
        )
    return make_table(rows, "samples")


@pytest.fixture(scope="session")
def planted_samples():
    """``planted_samples(directory, n, desirable=None)``: a samples table of n random CogVideoX latents."""
    return _planted_samples


def _real_clips(directory, n: int) -> RealClips:
    """n random CogVideoX real-video latents, captioned two by two (clips share caption files)."""
    g = torch.Generator().manual_seed(1)
    for c in range((n + 1) // 2):
        save_prompt_embeds(
            directory / f"caption{c}.safetensors",
            torch.randn(COG_TEXT, generator=g),
            prompt=f"c{c}",
            version="t",
        )
    for i in range(n):
        save_latents(
            directory / f"real{i}.safetensors", torch.randn(COG_LATENT, generator=g), version="t", seed=None
        )
    return RealClips(
        tuple(f"real{i}" for i in range(n)),
        tuple(str(directory / f"real{i}.safetensors") for i in range(n)),
        tuple(str(directory / f"caption{i // 2}.safetensors") for i in range(n)),
    )


@pytest.fixture
def real_clips():
    """``real_clips(directory, n)``: RealClips of n random CogVideoX latents with caption embeddings."""
    return _real_clips
