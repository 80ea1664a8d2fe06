"""Real clips and captions are encoded once (VAE latents, text-encoder embeddings) for the λ2 term."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ipo_ray.data import columns as col
from ipo_ray.data import make_table, read_frames, write_mp4
from ipo_ray.generator import (
    GeneratorError,
    WorldGenerator,
    encode_real_videos,
    load_latents,
    load_prompt_embeds,
)
from ipo_ray.generator.types import uint8_to_videos


def _real_table(root: Path, sizes: list[tuple[int, int, int]], captions: list[str] | None = None):
    rng = np.random.default_rng(0)
    captions = captions or ["A ball rolls."] * len(sizes)
    rows = []
    for i, ((t, h, w), caption) in enumerate(zip(sizes, captions, strict=True)):
        write_mp4(root / f"r{i}.mp4", rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8), fps=8)
        rows.append({col.VIDEO_ID: f"r{i}", col.VIDEO_PATH: f"r{i}.mp4", col.CAPTION: caption})
    return make_table(rows, "real_videos")


def test_real_videos_are_encoded_once(generator, tmp_path: Path, monkeypatch) -> None:
    # 9 frames as sampled, and a 12-frame clip resampled to 9.
    table = _real_table(tmp_path / "clips", [(9, 16, 16), (12, 16, 16)])
    out = encode_real_videos(generator, table, tmp_path / "clips", tmp_path / "cache")
    assert out.num_rows == 2
    for row in out.to_pylist():
        latents = load_latents(tmp_path / "cache" / row[col.LATENT_PATH])
        assert tuple(latents.shape) == generator.latent_shape
    frames = read_frames(tmp_path / "clips" / "r0.mp4", num_frames=9)
    expected = generator.encode_video(frames)
    torch.testing.assert_close(load_latents(tmp_path / "cache" / out[col.LATENT_PATH][0].as_py()), expected)

    _refuse_encoding(monkeypatch, generator)
    assert encode_real_videos(generator, table, tmp_path / "clips", tmp_path / "cache").equals(out)


def test_real_video_of_another_size(generator, tmp_path: Path) -> None:
    table = _real_table(tmp_path, [(9, 32, 16)])
    with pytest.raises(GeneratorError, match="resize the real clips"):
        encode_real_videos(generator, table, tmp_path, tmp_path / "cache")


def test_captions_are_embedded_by_the_generators_text_encoder(generator, tmp_path: Path, monkeypatch) -> None:
    captions = ["A ball rolls.", "A red square falls.", "A ball rolls."]
    table = _real_table(tmp_path / "clips", [(9, 16, 16)] * 3, captions)
    out = encode_real_videos(generator, table, tmp_path / "clips", tmp_path / "cache")
    paths = out[col.PROMPT_EMBEDS_PATH].to_pylist()
    assert paths[0] == paths[2] != paths[1]  # one file per distinct caption
    for caption, path in zip(captions, paths, strict=True):
        # The embeddings preference samples get (`sample_to_files` caches encode_prompt the same way).
        torch.testing.assert_close(
            load_prompt_embeds(tmp_path / "cache" / path), generator.encode_prompt(caption)
        )

    _refuse_encoding(monkeypatch, generator)
    assert encode_real_videos(generator, table, tmp_path / "clips", tmp_path / "cache").equals(out)


# Captions of different token lengths, one repeated: batches mix short and long prompts, so any leak of
# padding or of another row through the attention mask would change a row's embeddings.
CAPTIONS = [
    "A ball rolls.",
    "A small red circle glides slowly to the left across a black background.",
    "Blue.",
    "A ball rolls.",
    "A large green square falls fast.",
    "Two triangles.",
]


def _refuse_encoding(monkeypatch: pytest.MonkeyPatch, generator) -> None:
    """Makes every encoder of `generator`, one-at-a-time or batched, fail the test when called."""
    for name in ("encode_prompt", "encode_prompts", "encode_video", "encode_videos"):
        if hasattr(generator, name):
            monkeypatch.setattr(generator, name, lambda *args, name=name: pytest.fail(f"{name} called"))


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """{relative path: (mtime_ns, bytes)} of every file under `root`."""
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _assert_batched_matches_one_at_a_time(generator, tmp_path: Path, size: tuple[int, int, int]) -> None:
    table = _real_table(tmp_path / "clips", [size] * len(CAPTIONS), CAPTIONS)
    clips = tmp_path / "clips"
    single = encode_real_videos(
        generator, table, clips, tmp_path / "single", text_batch_size=1, clip_batch_size=1
    )
    # 5 distinct captions in batches of 3 and 6 clips in batches of 4: full batches and a remainder each.
    batched = encode_real_videos(
        generator, table, clips, tmp_path / "batched", text_batch_size=3, clip_batch_size=4
    )
    assert batched.equals(single)
    files = _snapshot(tmp_path / "single")
    assert files.keys() == _snapshot(tmp_path / "batched").keys()
    assert len(files) == len(CAPTIONS) + len(set(CAPTIONS))
    for row in single.to_pylist():
        for path, load in (
            (row[col.LATENT_PATH], load_latents),
            (row[col.PROMPT_EMBEDS_PATH], load_prompt_embeds),
        ):
            one, many = load(tmp_path / "single" / path), load(tmp_path / "batched" / path)
            assert one.shape == many.shape and one.dtype == many.dtype
            torch.testing.assert_close(many, one, rtol=1e-5, atol=1e-5)
        # Also the embeddings `encode_prompt` gives the candidates of the same text.
        torch.testing.assert_close(
            load_prompt_embeds(tmp_path / "batched" / row[col.PROMPT_EMBEDS_PATH]),
            generator.encode_prompt(row[col.CAPTION]),
            rtol=1e-5,
            atol=1e-5,
        )


def _assert_second_call_writes_nothing(generator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = _real_table(tmp_path / "clips", [(generator.num_frames, generator.height, generator.width)] * 2)
    first = encode_real_videos(generator, table, tmp_path / "clips", tmp_path / "batched")
    before = _snapshot(tmp_path / "batched")
    _refuse_encoding(monkeypatch, generator)
    assert encode_real_videos(generator, table, tmp_path / "clips", tmp_path / "batched").equals(first)
    assert _snapshot(tmp_path / "batched") == before


def test_batched_encoding_equals_one_at_a_time(generator, tmp_path: Path, monkeypatch) -> None:
    _assert_batched_matches_one_at_a_time(generator, tmp_path, (9, 16, 16))
    _assert_second_call_writes_nothing(generator, tmp_path / "again", monkeypatch)


@pytest.fixture(scope="module")
def world_generator() -> WorldGenerator:
    return WorldGenerator()  # the shipped small checkpoint, as the main loop's real stage uses


def test_world_batched_encoding_equals_one_at_a_time(world_generator, tmp_path: Path, monkeypatch) -> None:
    g = world_generator
    _assert_batched_matches_one_at_a_time(g, tmp_path, (g.num_frames, g.height, g.width))
    _assert_second_call_writes_nothing(g, tmp_path / "again", monkeypatch)


def test_clips_of_mixed_shapes_are_refused_in_one_batch() -> None:
    with pytest.raises(GeneratorError, match="share a shape"):
        uint8_to_videos([np.zeros((9, 16, 16, 3), np.uint8), np.zeros((5, 16, 16, 3), np.uint8)])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_batch_sizes_must_be_positive_integers(generator, tmp_path: Path, bad) -> None:
    table = _real_table(tmp_path, [(9, 16, 16)])
    with pytest.raises(GeneratorError, match="text_batch_size must be an integer"):
        encode_real_videos(generator, table, tmp_path, tmp_path / "cache", text_batch_size=bad)
    with pytest.raises(GeneratorError, match="clip_batch_size must be an integer"):
        encode_real_videos(generator, table, tmp_path, tmp_path / "cache", clip_batch_size=bad)
