"""The evaluation clips an evaluate stage keeps for people, and their pairing across rounds.

Every evaluate stage samples the same evaluation prompts with the same seeds, so round 0 (the base
generator) and round k differ only by their weights. Each keeps the clips of the first
``loop.video_grid_prompts`` prompts and lists them, in prompt order, in ``eval_clips.json`` in its
folder (paths relative to that folder)::

    {"clips": [{"key": "prompt-000", "prompt": "A small red circle ...", "path": "clips/prompt-000.mp4"}]}

A key names the prompt and seed a clip was sampled for, the same in every round: the world writes
``prompt-<i>`` (benchmark prompt i, seed i); cogvideox/wan use the evaluation prompt's id. `paired`
matches round 0's list with round k's into the rows of `artifacts.comparison_grid`. An evaluate stage
committed before clips were kept has no list, and no grid is drawn for it.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data import write_mp4
from ipo_ray.data.atomic import write_bytes_atomic

INDEX = "eval_clips.json"
CLIPS_DIR = "clips"


@dataclass(frozen=True)
class EvalClip:
    """One kept clip: its prompt's key and text, and its mp4's path relative to the stage folder."""

    key: str
    prompt: str
    path: str


def write_index(stage_dir: Path, clips: Sequence[EvalClip]) -> Path:
    """Lists the kept clips (prompt order) in the stage folder; returns the list's path."""
    path = stage_dir / INDEX
    write_bytes_atomic(path, json.dumps({"clips": [asdict(clip) for clip in clips]}, indent=1).encode())
    return path


def read_index(stage_dir: Path) -> list[EvalClip] | None:
    """The kept clips of an evaluate stage in prompt order; None when it kept none (an older stage)."""
    path = stage_dir / INDEX
    if not path.is_file():
        return None
    return [EvalClip(**clip) for clip in json.loads(path.read_text())["clips"]]


def keep_clips(stage_dir: Path, clips: Sequence[tuple[str, str, np.ndarray]], fps: float) -> list[EvalClip]:
    """Writes (key, prompt text, uint8 frames (T, H, W, 3)) as ``clips/<key>.mp4`` and lists them."""
    kept = []
    for key, prompt, frames in clips:
        rel = f"{CLIPS_DIR}/{key}.mp4"
        write_mp4(stage_dir / rel, frames, fps=fps)
        kept.append(EvalClip(key, prompt, rel))
    write_index(stage_dir, kept)
    return kept


def list_generated_clips(
    stage_dir: Path, clips: pa.Table, prompts: pa.Table, num_prompts: int
) -> list[EvalClip]:
    """Lists the clips of the first `num_prompts` prompts that `generate_candidates` wrote under ``clips/``.

    The cogvideox/wan evaluation keeps every clip anyway; this only names the first few, keyed by
    prompt id (whose seed is the same in every round).

    Args:
        stage_dir: The evaluate stage folder.
        clips: Candidates table (one per prompt) with a ``prompt`` text column; paths relative to
            ``stage_dir / "clips"``.
        prompts: The evaluation prompts, in their order.
        num_prompts: Clips listed, at most.
    """
    by_prompt = {row[col.PROMPT_ID]: row for row in clips.to_pylist()}
    first = [pid for pid in prompts[col.PROMPT_ID].to_pylist() if pid in by_prompt][:num_prompts]
    kept = [
        EvalClip(pid, by_prompt[pid][col.PROMPT], f"{CLIPS_DIR}/{by_prompt[pid][col.VIDEO_PATH]}")
        for pid in first
    ]
    if kept:
        write_index(stage_dir, kept)
    return kept


def paired(base_dir: Path, round_dir: Path, num_prompts: int) -> list[tuple[Path, Path]] | None:
    """(base clip, round clip) mp4 paths of the first `num_prompts` prompts both stages kept.

    Args:
        base_dir: Round 0's evaluate folder (the base generator).
        round_dir: Round k's evaluate folder.
        num_prompts: Rows wanted, at most.

    Returns:
        Rows in round 0's prompt order; None when either stage kept no clips (or none in common).
    """
    base, ours = read_index(base_dir), read_index(round_dir)
    if base is None or ours is None:
        return None
    by_key = {clip.key: clip for clip in ours}
    rows = [(base_dir / clip.path, round_dir / by_key[clip.key].path) for clip in base if clip.key in by_key]
    return rows[:num_prompts] or None
