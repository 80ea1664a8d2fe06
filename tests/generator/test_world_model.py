"""The world generator: a tiny freshly built world model through the real save → load → sample path,
its training pieces, its errors, and the shipped checkpoints."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ipo_ray.data import read_frames
from ipo_ray.generator import GeneratorError, candidate_seeds, load_latents, load_prompt_embeds
from ipo_ray.generator.tiny import save_tiny_pipelines
from ipo_ray.generator.world import WorldGenerator
from ipo_ray.generator.world_model import (
    ASSETS_DIR,
    DEFAULT_CHECKPOINT,
    SIZES,
    WorldModelSize,
    build_world_model_from,
    count_parameters,
    load_world_model,
    save_world_model,
    world_tokenizer,
)
from ipo_ray.generator.world_train import (
    EMA,
    WebStream,
    benchmark_model,
    clips_to_pixels,
    flow_matching_loss,
    logit_normal_sigmas,
    train_step,
)
from ipo_ray.world.geometry import RenderSettings

TINY = WorldModelSize(num_layers=1, num_heads=2, ffn_dim=32, text_dim=32, text_layers=1, text_ffn_dim=32)
SETTINGS = RenderSettings()  # 4 frames of 16×16
PROMPTS = [
    "A small red circle glides slowly to the left across a black background.",
    "A big blue square grows.",
]
K = 3


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random world model saved as a checkpoint folder."""
    model = build_world_model_from(TINY, SETTINGS, seed=0)
    return save_world_model(
        tmp_path_factory.mktemp("world") / "tiny", model, SETTINGS, size="tiny", training={"steps": 0}
    )


@pytest.fixture(scope="module")
def generator(tiny_path: Path) -> WorldGenerator:
    return WorldGenerator(tiny_path, num_inference_steps=3, guidance_scale=3.0)


@pytest.fixture(scope="module")
def sampled(generator: WorldGenerator, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("candidates")
    return generator.sample(PROMPTS, [7, 8], num_candidates=K, out_dir=out, prompt_ids=["p0", "p1"]), out


def test_sample_writes_k_candidates_per_prompt(generator: WorldGenerator, sampled) -> None:
    candidates, out = sampled
    assert [c.prompt_id for c in candidates] == ["p0"] * K + ["p1"] * K
    assert [c.seed for c in candidates[:K]] == candidate_seeds(7, K)
    assert generator.version == "world-tiny-0"
    for c in candidates:
        latents = load_latents(out / c.latent_path)
        assert latents.shape == (3, 4, 16, 16) and latents.dtype == torch.float32
        assert read_frames(out / c.video_path, num_frames=None).shape == (4, 16, 16, 3)
    assert sorted(p.name for p in (out / "prompt_embeds").iterdir()) == ["p0.safetensors", "p1.safetensors"]
    assert load_prompt_embeds(out / candidates[0].prompt_embeds_path).shape == (32, TINY.text_dim)


def test_distinct_seeds_differ_and_the_same_seed_reproduces(generator, sampled, tmp_path: Path) -> None:
    candidates, out = sampled
    latents = [load_latents(out / c.latent_path) for c in candidates[:K]]
    assert all((latents[i] - latents[j]).abs().max() > 1e-3 for i in range(K) for j in range(i + 1, K))
    again = generator.sample(PROMPTS[:1], [7], num_candidates=K, out_dir=tmp_path, prompt_ids=["p0"])
    for first, second in zip(candidates[:K], again, strict=True):
        assert torch.equal(load_latents(out / first.latent_path), load_latents(tmp_path / second.latent_path))


def test_a_candidate_sampled_alone_equals_it_sampled_among_k(generator, sampled) -> None:
    candidates, out = sampled
    c = candidates[2]
    alone = generator.denoise(load_prompt_embeds(out / c.prompt_embeds_path), [c.seed])[0]
    torch.testing.assert_close(alone, load_latents(out / c.latent_path), atol=1e-4, rtol=1e-4)


def test_latents_are_the_video_in_pixel_space(generator, sampled) -> None:
    candidates, out = sampled
    latents = load_latents(out / candidates[0].latent_path)
    decoded = generator.decode(latents.unsqueeze(0))[0]
    from_mp4 = read_frames(out / candidates[0].video_path, num_frames=None)
    assert np.abs(decoded.astype(int) - from_mp4.astype(int)).max() <= 3  # lossless x264: YUV rounding only
    # encode_video is the exact inverse of decode on uint8 clips.
    assert np.array_equal(generator.decode(generator.encode_video(decoded).unsqueeze(0))[0], decoded)


def test_empty_prompt_is_all_zeros_and_long_prompts_fail(generator: WorldGenerator) -> None:
    assert not generator.encode_prompt("").any()
    assert generator.encode_prompt(PROMPTS[0]).abs().sum() > 0
    with pytest.raises(GeneratorError, match="max_sequence_length"):
        generator.encode_prompt(" ".join(["red circle"] * 40))


def test_guidance_changes_the_sample(tiny_path: Path) -> None:
    embeds = WorldGenerator(tiny_path, num_inference_steps=2, guidance_scale=1.0).encode_prompt(PROMPTS[1])
    unguided = WorldGenerator(tiny_path, num_inference_steps=2, guidance_scale=1.0).denoise(embeds, [1])
    guided = WorldGenerator(tiny_path, num_inference_steps=2, guidance_scale=4.0).denoise(embeds, [1])
    assert (unguided - guided).abs().max() > 1e-4


def test_save_load_round_trip_is_float32_and_fp16_close(tmp_path: Path) -> None:
    model = build_world_model_from(TINY, SETTINGS, seed=1)
    path = save_world_model(tmp_path / "ckpt", model, SETTINGS, size="tiny", training={"steps": 5})
    save_world_model(path, model, SETTINGS, size="tiny", training={"steps": 6})  # replaces in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folders left
    loaded, settings, meta = load_world_model(path)
    assert settings == SETTINGS and meta["training"]["steps"] == 6
    assert meta["parameters"] == count_parameters(model)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3)  # stored as float16


def test_bad_checkpoint_paths_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="not a folder"):
        WorldGenerator(tmp_path / "missing")
    wan = save_tiny_pipelines(tmp_path)["wan"]
    with pytest.raises(GeneratorError, match="WanPipeline"):
        WorldGenerator(wan)
    other = tmp_path / "other"
    other.mkdir()
    (other / "world_generator.json").write_text(json.dumps({"_class_name": "Something"}))
    with pytest.raises(GeneratorError, match="retrain"):
        WorldGenerator(other)


def test_bad_sampling_arguments_fail(tiny_path: Path, generator: WorldGenerator, tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="guidance_scale"):
        WorldGenerator(tiny_path, guidance_scale=0.5)
    with pytest.raises(GeneratorError, match="num_candidates"):
        generator.sample(PROMPTS, [1, 2], num_candidates=0, out_dir=tmp_path)
    with pytest.raises(GeneratorError, match="frames of shape"):
        generator.encode_video(np.zeros((4, 8, 8, 3), np.uint8))


def test_flow_matching_loss_and_sigmas() -> None:
    clean, noise = torch.randn(2, 3, 4, 16, 16), torch.randn(2, 3, 4, 16, 16)
    assert flow_matching_loss(noise - clean, noise, clean) == 0
    torch.testing.assert_close(
        flow_matching_loss(torch.zeros_like(clean), noise, clean), (noise - clean).pow(2).mean()
    )
    sigmas = logit_normal_sigmas(10_000, torch.Generator().manual_seed(0))
    assert 0 < sigmas.min() and sigmas.max() < 1 and abs(float(sigmas.median()) - 0.5) < 0.02


def test_web_stream_batches() -> None:
    stream = WebStream(SETTINGS, batch_size=8, fresh=2, drop_rate=0.5, seed=3)
    first_clean, first_texts = stream.next()
    clean, texts = stream.next()
    assert clean.shape == (8, 3, 4, 16, 16) and len(texts) == 8
    assert clean.min() >= -1 and clean.max() <= 1
    assert stream.rendered == 8 + 2  # the first batch is all fresh, later ones 2 fresh each
    assert "" in first_texts + texts and any(t for t in first_texts + texts)
    with pytest.raises(ValueError, match="fresh"):
        WebStream(SETTINGS, batch_size=4, fresh=5)


def test_training_steps_fit_a_fixed_batch_and_ema_follows() -> None:
    torch.manual_seed(0)
    model = build_world_model_from(TINY, SETTINGS, seed=2)
    ema = EMA(model, decay=0.9)
    clean, texts = WebStream(SETTINGS, batch_size=4, fresh=4, drop_rate=0.0, seed=0).next()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        losses.append(train_step(model, optimizer, clean, texts, torch.Generator().manual_seed(0)))
        ema.update(model)
    assert losses[-1] < 0.7 * losses[0]
    assert ema.updates == 30
    first = next(ema.model.parameters())
    assert not torch.equal(first, next(model.parameters())) and not first.requires_grad


def test_benchmark_model_scores_every_dimension() -> None:
    model = build_world_model_from(TINY, SETTINGS, seed=0).eval()
    scores = benchmark_model(model, SETTINGS, guidance_scale=2.0, num_inference_steps=2, num_prompts=3)
    assert {"color", "action", "total"} <= set(scores) and 0 <= scores["total"] <= 100


def test_clips_to_pixels_scales_uint8_to_unit_range() -> None:
    clips = [np.full((4, 16, 16, 3), 255, np.uint8), np.zeros((4, 16, 16, 3), np.uint8)]
    pixels = clips_to_pixels(clips)
    assert pixels.shape == (2, 3, 4, 16, 16) and pixels[0].min() == 1 and pixels[1].max() == -1


@pytest.mark.parametrize("size", sorted(SIZES))
def test_shipped_checkpoint_loads_and_samples(size: str, tmp_path: Path) -> None:
    path = ASSETS_DIR / size
    files = [p for p in path.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20_000_000  # shipped inside the package
    generator = WorldGenerator(path, num_inference_steps=4)
    assert generator.meta["size"] == size and generator.meta["training"]["steps"] > 0
    candidates = generator.sample(PROMPTS[:1], [11], num_candidates=2, out_dir=tmp_path)
    latents = [load_latents(tmp_path / c.latent_path) for c in candidates]
    assert all(x.shape == (3, 4, 16, 16) for x in latents)
    videos = [read_frames(tmp_path / c.video_path, num_frames=None) for c in candidates]
    assert all(v.shape == (4, 16, 16, 3) for v in videos)
    assert candidates[0].seed != candidates[1].seed and not np.array_equal(videos[0], videos[1])


def test_default_checkpoint_is_the_shipped_small_model() -> None:
    assert DEFAULT_CHECKPOINT == ASSETS_DIR / "small"
    assert WorldGenerator(num_inference_steps=1).meta["size"] == "small"


def test_world_tokenizer_rebuilds_the_shipped_one_from_world_prompts() -> None:
    from transformers import AutoTokenizer

    from ipo_ray.generator.tiny import tiny_tokenizer

    shipped = AutoTokenizer.from_pretrained(DEFAULT_CHECKPOINT / "tokenizer")
    rebuilt = world_tokenizer()
    prompt = "Over a softly striped dark gray background, a little green triangle moves slowly up."
    assert rebuilt.get_vocab() == shipped.get_vocab()
    assert rebuilt.encode(prompt) == shipped.encode(prompt)
    # The 3-sentence default corpus splits the same prompt into many more pieces.
    assert len(tiny_tokenizer(len(rebuilt)).encode(prompt)) > 2 * len(rebuilt.encode(prompt))
