"""Evaluation of a cogvideox/wan generator: fixed prompts and seeds, temporal flickering, critic scores.

The world has an oracle (`evaluation`); production backends do not, so a round's generator is scored
on a fixed evaluation set (chosen once per run, `evaluation_prompts`; one clip per prompt with the
same seed every round, so rounds differ only by weights) by:

- VBench's temporal flickering (`flicker`), which needs no network or weights: ``eval/temporal_flickering``;
- the critic, through the same Serve app and labelling code as the label stage, always with the base
  critic (a refreshed critic would move the yardstick between rounds): per dimension the mean LiFT
  reward of the votes, ``eval/critic/<dimension>/reward``, and the share of clips whose majority
  verdict is Good, ``eval/critic/<dimension>/good_share`` (plus their means over dimensions);
- the full VBench when the user installed it (`vbench_full`): ``eval/vbench/<dimension>``.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa

from ipo_ray.config import Config
from ipo_ray.data import columns as col
from ipo_ray.data import read_frames, read_table
from ipo_ray.loop.flicker import temporal_flickering
from ipo_ray.loop.labelling import Labelled
from ipo_ray.loop.preferences import vote_reward
from ipo_ray.loop.prompts import source_prompts
from ipo_ray.loop.vbench_full import check_full_vbench
from ipo_ray.vocab import DIMENSIONS

PROMPTS_KEY = "loop.evaluation.prompts_file"


class EvaluationSetupError(ValueError):
    """The evaluation set cannot be built from the config; the message names the key and the fix."""


def check_evaluation(cfg: Config, needs_prompts: bool = True) -> None:
    """Fails before Ray starts if a production evaluation set or full VBench cannot be had.

    Args:
        cfg: The job's config.
        needs_prompts: The evaluation prompts are still to be chosen (round 0's evaluation is not
            committed); a resumed run has them in its run directory already.

    Raises:
        EvaluationSetupError: ``loop.evaluation.prompts_file`` is unreadable or too short.
        VBenchSetupError: Full VBench asked for without its package or weights folder.
    """
    if cfg.generator.backend == "world":
        return
    settings = cfg.loop.evaluation
    if needs_prompts and settings.prompts_file is not None:
        _file_prompts(settings.prompts_file, settings.num_prompts)
    check_full_vbench(settings)


def evaluation_prompts(cfg: Config) -> pa.Table:
    """The run's evaluation prompts: the file's first rows, else the prompt source at round index 0.

    Round index 0 is the base evaluation's, never a training round's, so a world-grammar or LLM set is
    held out from every round's training prompts (a prompts file may share rows with them).
    """
    settings = cfg.loop.evaluation
    if settings.prompts_file is not None:
        return _file_prompts(settings.prompts_file, settings.num_prompts)
    table, _ = source_prompts(cfg.loop, settings.num_prompts, cfg.seed, round_index=0)
    return table


def _file_prompts(path: str, num_prompts: int) -> pa.Table:
    try:
        table = read_table(path, "prompts")
    except Exception as error:  # any unreadable table: report it under the key to fix
        raise EvaluationSetupError(f"{PROMPTS_KEY}: cannot read a prompts table at {path}: {error}") from None
    if table.num_rows < num_prompts:
        raise EvaluationSetupError(
            f"{PROMPTS_KEY}: {path} holds {table.num_rows} prompts, fewer than "
            f"loop.evaluation.num_prompts ({num_prompts}); lower num_prompts or add prompts"
        )
    return table.slice(0, num_prompts)


def flicker_scores(clips: pa.Table, clips_dir: Path) -> dict[str, float]:
    """Candidate id → VBench temporal flickering of its mp4 (paths relative to `clips_dir`)."""
    rows = clips.select([col.CANDIDATE_ID, col.VIDEO_PATH]).to_pylist()
    return {
        r[col.CANDIDATE_ID]: temporal_flickering(read_frames(clips_dir / r[col.VIDEO_PATH], num_frames=None))
        for r in rows
    }


def critic_metrics(labelled: Labelled) -> dict[str, float]:
    """Mean LiFT reward and Good share per dimension over the evaluation clips (pointwise labels).

    A clip's reward on a dimension is `vote_reward` of its votes; a judgement with no parsed vote has
    no reward and is left out of that mean. Its Good share counts clips whose majority verdict is
    Good, over all clips (no majority counts as not Good).

    Returns:
        ``eval/critic/<dimension>/reward`` and ``.../good_share`` per dimension, and
        ``eval/critic/reward`` and ``eval/critic/good_share``, their means over dimensions.
    """
    clips = len(labelled.point_votes)
    if clips == 0:
        raise ValueError("critic metrics of an empty evaluation set")
    good = {d: 0 for d in DIMENSIONS}
    for row in labelled.labels.select([col.DIMENSION, col.VERDICT]).to_pylist():
        good[row[col.DIMENSION]] += row[col.VERDICT] == "Good"
    out: dict[str, float] = {}
    for d in DIMENSIONS:
        rewards = [vote_reward(v[d]) for v in labelled.point_votes.values() if sum(v[d].values()) > 0]
        out[f"eval/critic/{d}/reward"] = float(np.mean(rewards)) if rewards else float("nan")
        out[f"eval/critic/{d}/good_share"] = good[d] / clips
    for stat in ("reward", "good_share"):
        out[f"eval/critic/{stat}"] = float(np.nanmean([out[f"eval/critic/{d}/{stat}"] for d in DIMENSIONS]))
    return out
