"""The round's evaluation grid: clips kept by evaluate stages, paired by prompt, tiled base | round k."""

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ipo_ray.config import Config
from ipo_ray.data import columns as col
from ipo_ray.data import read_frames, write_mp4
from ipo_ray.generator.world_model import DEFAULT_CHECKPOINT, load_world_model
from ipo_ray.generator.world_train import benchmark_clips, benchmark_model
from ipo_ray.loop import artifacts, eval_clips
from ipo_ray.loop.evaluation import benchmark_generator
from ipo_ray.loop.rounds import _eval_grid
from ipo_ray.loop.run_dir import RunDir
from ipo_ray.loop.stages import BASE_CRITIC, EVALUATE, RoundContext

T, H, W = 4, 16, 16


def _solid(colour: tuple[int, int, int]) -> np.ndarray:
    """A (T, H, W, 3) clip of one colour: H.264 keeps flat colours, so tiles can be checked exactly-ish."""
    return np.broadcast_to(np.array(colour, np.uint8), (T, H, W, 3)).copy()


def test_comparison_grid_tiles_rows_by_columns(tmp_path: Path) -> None:
    colours = [[(200, 0, 0), (0, 200, 0)], [(0, 0, 200), (200, 200, 0)], [(0, 200, 200), (90, 90, 90)]]
    rows = []
    for i, row in enumerate(colours):
        rows.append([])
        for j, colour in enumerate(row):
            write_mp4(tmp_path / f"{i}-{j}.mp4", _solid(colour), fps=8)
            rows[-1].append(tmp_path / f"{i}-{j}.mp4")
    scale, gap = 4, artifacts._GAP
    path = artifacts.comparison_grid(tmp_path / "grid.mp4", rows, fps=4, scale=scale)

    grid = read_frames(path, num_frames=None)
    assert grid.shape == (T, 3 * (H + gap) * scale, 2 * (W + gap) * scale, 3)  # rows × cols tiles
    for i, row in enumerate(colours):
        for j, colour in enumerate(row):
            top, left = i * (H + gap) * scale, j * (W + gap) * scale
            tile = grid[:, top : top + H * scale, left : left + W * scale].astype(int)
            assert np.abs(tile - np.array(colour)).max() <= 3, (i, j)
    assert (grid[:, H * scale + 1, :, :] >= 250).all()  # the white gap below the first row


def test_comparison_grid_refuses_an_empty_grid(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no clips"):
        artifacts.comparison_grid(tmp_path / "grid.mp4", [], fps=4)


def _keep(stage_dir: Path, keys: list[str], shade: int) -> None:
    clips = [(key, f"prompt {key}", _solid((shade, shade, shade))) for key in keys]
    eval_clips.keep_clips(stage_dir, clips, fps=8)


def test_clips_pair_by_prompt_key_in_the_base_order(tmp_path: Path) -> None:
    base, ours = tmp_path / "round-0", tmp_path / "round-1"
    _keep(base, ["prompt-000", "prompt-001", "prompt-002"], 40)
    _keep(ours, ["prompt-002", "prompt-000"], 200)  # another order, one prompt missing
    rows = eval_clips.paired(base, ours, num_prompts=4)
    assert rows == [
        (base / "clips/prompt-000.mp4", ours / "clips/prompt-000.mp4"),
        (base / "clips/prompt-002.mp4", ours / "clips/prompt-002.mp4"),
    ]
    assert eval_clips.paired(base, ours, num_prompts=1) == rows[:1]
    assert eval_clips.read_index(base)[1] == eval_clips.EvalClip(
        "prompt-001", "prompt prompt-001", "clips/prompt-001.mp4"
    )
    assert eval_clips.paired(base, tmp_path / "older", num_prompts=4) is None  # no clips kept there


def test_world_evaluation_keeps_its_first_clips(tmp_path: Path) -> None:
    args = (3.0, 2, 3)  # guidance, steps, prompts
    scores = benchmark_generator(DEFAULT_CHECKPOINT, *args, keep_dir=tmp_path, num_kept=2)
    model, settings, _ = load_world_model(DEFAULT_CHECKPOINT)
    # Keeping clips changes no score (NaN: a dimension none of 3 prompts asks about).
    assert scores == pytest.approx(benchmark_model(model, settings, *args), nan_ok=True)
    kept = eval_clips.read_index(tmp_path)
    rendered = benchmark_clips(model, settings, *args)
    assert [clip.key for clip in kept] == ["prompt-000", "prompt-001"]
    for clip, (text, frames, _) in zip(kept, rendered, strict=False):
        assert clip.prompt == text
        # Prompt i with seed i, the clip the benchmark scored (H.264 at crf 0: a level or two of rounding).
        assert np.abs(read_frames(tmp_path / clip.path, num_frames=None).astype(int) - frames).max() <= 3


def _context(tmp_path: Path) -> RoundContext:
    cfg = Config.model_validate({"loop": {"video_grid_prompts": 2}})  # the world backend
    run = RunDir(tmp_path / "run")
    return RoundContext(cfg, run, 1, tmp_path, tmp_path, BASE_CRITIC, tmp_path, None)


def test_round_eval_grid_shows_base_beside_the_round(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    _keep(ctx.run.stage_dir(0, EVALUATE), ["prompt-000", "prompt-001", "prompt-002"], 40)
    _keep(ctx.dir(EVALUATE), ["prompt-000", "prompt-001", "prompt-002"], 200)
    [path] = _eval_grid(ctx, ctx.dir("artifacts"))
    assert path.name == "eval_grid.mp4"
    grid = read_frames(path, num_frames=None).astype(int)
    scale, gap = 4, artifacts._GAP
    assert grid.shape == (T, 2 * (H + gap) * scale, 2 * (W + gap) * scale, 3)  # 2 prompts × (base, round)
    assert abs(grid[:, : H * scale, : W * scale].mean() - 40) <= 3  # base on the left
    left = (W + gap) * scale
    assert abs(grid[:, : H * scale, left : left + W * scale].mean() - 200) <= 3


def test_round_eval_grid_is_skipped_when_base_kept_no_clips(tmp_path: Path, caplog) -> None:
    ctx = _context(tmp_path)
    _keep(ctx.dir(EVALUATE), ["prompt-000"], 200)  # round 0 evaluated by an older version: no clips
    with caplog.at_level(logging.INFO, logger="ipo_ray.loop.rounds"):
        assert _eval_grid(ctx, ctx.dir("artifacts")) == []
    assert "no evaluation grid" in caplog.text
    assert not (ctx.dir("artifacts") / "eval_grid.mp4").exists()


def test_generated_evaluation_clips_are_listed_in_prompt_order(tmp_path: Path) -> None:
    # What the cogvideox/wan evaluation has after `generate_candidates`: one clip per prompt, any order.
    clips = pa.table(
        {
            col.PROMPT_ID: ["b", "c", "a"],
            col.PROMPT: ["Bee.", "Sea.", "Ay."],
            col.VIDEO_PATH: ["videos/b_s1.mp4", "videos/c_s2.mp4", "videos/a_s3.mp4"],
        }
    )
    prompts = pa.table({col.PROMPT_ID: ["a", "b", "c"]})
    kept = eval_clips.list_generated_clips(tmp_path, clips, prompts, num_prompts=2)
    assert kept == [
        eval_clips.EvalClip("a", "Ay.", "clips/videos/a_s3.mp4"),
        eval_clips.EvalClip("b", "Bee.", "clips/videos/b_s1.mp4"),
    ]
    assert eval_clips.read_index(tmp_path) == kept
