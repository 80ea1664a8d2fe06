"""Real clips and captions are encoded once (VAE latents, text-encoder embeddings) for the λ2 term."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ipo_ray.data import columns as col
from ipo_ray.data import make_table, read_frames, write_mp4
from ipo_ray.generator import GeneratorError, encode_real_videos, load_latents, load_prompt_embeds


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

    monkeypatch.setattr(generator, "encode_video", lambda frames: pytest.fail("encoded a cached clip again"))
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

    monkeypatch.setattr(
        generator, "encode_prompt", lambda text: pytest.fail("embedded a cached caption again")
    )
    assert encode_real_videos(generator, table, tmp_path / "clips", tmp_path / "cache").equals(out)
