"""Per-round artifacts for people: video grids, score charts, critic confusion matrices, a timeline.

Plain files written into the round's folder and then logged to MLflow: an mp4 grid of candidates
(one row per prompt, its K candidates side by side, best first by critic reward), an mp4 grid of
evaluation clips (one row per evaluation prompt, the base generator's clip beside this round's, same
seed), a PNG of the benchmark dimensions over rounds, one confusion matrix per dimension (critic
verdict vs oracle verdict) and a Gantt chart of the round's stages. Matplotlib runs headless (Agg).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: Ray workers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from ipo_ray.data import columns as col  # noqa: E402
from ipo_ray.data import read_frames, write_mp4  # noqa: E402
from ipo_ray.loop.run_dir import StageRecord  # noqa: E402
from ipo_ray.vocab import DIMENSIONS, VERDICTS  # noqa: E402

_GAP = 2  # pixels between clips in the grid


def video_grid(
    path: Path,
    candidates: pa.Table,
    rewards: Mapping[str, float],
    stage_dir: Path,
    num_prompts: int,
    fps: float,
    scale: int = 4,
) -> Path:
    """An mp4 with one row per prompt (the first `num_prompts`), candidates sorted by reward, best left.

    Clips are upscaled by `scale` (nearest) so 16-px world clips are visible in a browser.
    """
    by_prompt: dict[str, list[dict]] = {}
    for row in candidates.select([col.CANDIDATE_ID, col.PROMPT_ID, col.VIDEO_PATH]).to_pylist():
        by_prompt.setdefault(row[col.PROMPT_ID], []).append(row)
    rows = []
    for prompt_id in sorted(by_prompt)[:num_prompts]:
        ranked = sorted(by_prompt[prompt_id], key=lambda r: -rewards.get(r[col.CANDIDATE_ID], 0.0))
        rows.append([read_frames(stage_dir / r[col.VIDEO_PATH], num_frames=None) for r in ranked])
    if not rows:
        raise ValueError("no candidates to draw")
    write_mp4(path, tile_clips(rows, scale), fps=fps)
    return path


def comparison_grid(path: Path, rows: Sequence[Sequence[Path]], fps: float, scale: int = 4) -> Path:
    """An mp4 of clips side by side: row i, column j shows the mp4 ``rows[i][j]``.

    The round's evaluation grid passes one row per evaluation prompt and the columns base | round k
    (`eval_clips.paired`): the same prompt and seed, so a row shows what alignment changed.
    """
    if not rows or not all(rows):
        raise ValueError("no clips to draw")
    write_mp4(path, tile_clips([[read_frames(p, num_frames=None) for p in row] for row in rows], scale), fps)
    return path


def tile_clips(rows: Sequence[Sequence[np.ndarray]], scale: int) -> np.ndarray:
    """Clips (T, H, W, 3), all H × W, tiled in a white grid and upscaled (nearest) by `scale`.

    Returns:
        uint8 frames (T', H', W', 3): T' the shortest clip's length (longer ones are cut), H' =
        rows · (H + gap) · scale and W' = max row length · (W + gap) · scale, each rounded down to even
        (libx264 needs even sides). Upscaling makes 16-px world clips visible in a browser.
    """
    t = min(clip.shape[0] for clips in rows for clip in clips)
    _, h, w, _ = rows[0][0].shape
    cols = max(len(clips) for clips in rows)
    grid = np.full((t, len(rows) * (h + _GAP), cols * (w + _GAP), 3), 255, np.uint8)
    for i, clips in enumerate(rows):
        for j, clip in enumerate(clips):
            grid[:, i * (h + _GAP) : i * (h + _GAP) + h, j * (w + _GAP) : j * (w + _GAP) + w] = clip[:t]
    grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    return grid[:, : grid.shape[1] // 2 * 2, : grid.shape[2] // 2 * 2]


def score_chart(path: Path, history: Sequence[tuple[str, Mapping[str, float]]], keys: Sequence[str]) -> Path:
    """Benchmark dimensions (percent) per evaluated model, one line per dimension."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = [name for name, _ in history]
    for key in keys:
        ax.plot(labels, [scores.get(key, np.nan) for _, scores in history], marker="o", label=key)
    ax.set_ylabel("oracle score (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_matrices(
    labels: pa.Table, oracle: Mapping[str, Mapping[str, tuple[str, float]]]
) -> dict[str, np.ndarray]:
    """Per dimension, counts[oracle verdict, critic verdict] over pointwise labels (order: `VERDICTS`)."""
    index = {v: i for i, v in enumerate(VERDICTS)}
    out = {d: np.zeros((3, 3), np.int64) for d in DIMENSIONS}
    for row in labels.select([col.KIND, col.VIDEO_ID, col.DIMENSION, col.VERDICT]).to_pylist():
        truth = oracle.get(row[col.VIDEO_ID], {}).get(row[col.DIMENSION])
        if row[col.KIND] == "pointwise" and truth and row[col.VERDICT] in index:
            out[row[col.DIMENSION]][index[truth[0]], index[row[col.VERDICT]]] += 1
    return out


def confusion_chart(path: Path, matrices: Mapping[str, np.ndarray]) -> Path:
    """The matrices of `confusion_matrices` side by side, counts written in the cells."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(4 * len(matrices), 3.8))
    for ax, (dim, m) in zip(np.atleast_1d(axes), matrices.items(), strict=True):
        ax.imshow(m, cmap="Blues")
        ax.set_title(dim, fontsize=9)
        ax.set_xticks(range(3), VERDICTS)
        ax.set_yticks(range(3), VERDICTS)
        ax.set_xlabel("critic")
        ax.set_ylabel("oracle")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def timeline_chart(path: Path, records: Sequence[StageRecord]) -> Path:
    """A Gantt chart of stages (seconds from the first stage's start)."""
    t0 = min(r.start for r in records)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(records) + 1))
    for i, r in enumerate(records):
        ax.barh(i, r.seconds, left=r.start - t0)
    ax.set_yticks(range(len(records)), [f"r{r.round} {r.stage}" for r in records])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def overlap_ratio(records: Sequence[StageRecord]) -> float:
    """Σ stage busy time / wall time spanned by the stages: above 1 means stages ran at the same time."""
    if not records:
        return float("nan")
    wall = max(r.end for r in records) - min(r.start for r in records)
    return sum(r.seconds for r in records) / wall if wall > 0 else float("nan")
