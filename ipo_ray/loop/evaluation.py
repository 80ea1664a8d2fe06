"""Evaluation in the embedded world: the generator on the benchmark, the critic against the oracle.

The oracle is the world's ground truth (it judges pixels against the prompt's structure), so these
numbers say whether a round really helped, independently of the critic that drove it:

- `benchmark_generator`: the world benchmark (VBench-style Quality/Semantic/Total, percent) of a
  generator checkpoint, one clip per benchmark prompt, prompt i sampled with seed i in every round,
  so rounds differ only by their weights. The first few clips can be kept for people
  (`ipo_ray.loop.eval_clips`).
- `critic_agreement`: the share of the critic's voted verdicts that equal the oracle's, per
  dimension, on the round's candidates (what the critic's labels were worth this round).
- `pair_accuracy`: the share of the round's preference pairs whose winner the oracle also prefers
  (mean oracle score over dimensions), i.e. how clean the training signal was.
"""

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data import read_frames
from ipo_ray.generator.world_model import load_world_model
from ipo_ray.generator.world_train import benchmark_clips
from ipo_ray.loop.eval_clips import keep_clips
from ipo_ray.vocab import DIMENSIONS
from ipo_ray.world.benchmark import score_clips
from ipo_ray.world.oracle import Judgement, judge
from ipo_ray.world.prompts import spec_from_json
from ipo_ray.world.render import RenderSettings


def benchmark_generator(
    model_path: str | Path,
    guidance_scale: float,
    num_inference_steps: int,
    num_prompts: int,
    *,
    keep_dir: Path | None = None,
    num_kept: int = 0,
) -> dict[str, float]:
    """World benchmark scores (percent) of a world generator checkpoint; keys as `score_clips`.

    Args:
        model_path: The checkpoint folder.
        guidance_scale: Classifier-free guidance weight.
        num_inference_steps: Euler steps.
        num_prompts: Benchmark prompts, one clip each (prompt i with seed i).
        keep_dir: Where to keep the first `num_kept` clips as mp4 for people (`eval_clips.keep_clips`,
            keys ``prompt-<i>``); None keeps none.
        num_kept: Clips kept, from the first prompt on.
    """
    model, settings, _ = load_world_model(model_path)
    clips = benchmark_clips(model, settings, guidance_scale, num_inference_steps, num_prompts)
    if keep_dir is not None and num_kept > 0:
        kept = [(f"prompt-{i:03d}", text, frames) for i, (text, frames, _) in enumerate(clips[:num_kept])]
        keep_clips(keep_dir, kept, settings.fps)
    return score_clips([(frames, spec) for _, frames, spec in clips], settings)


def oracle_judgements(
    candidates: pa.Table, prompts: pa.Table, stage_dir: Path, settings: RenderSettings
) -> dict[str, dict[str, Judgement]]:
    """Candidate id → dimension → the oracle's `Judgement` of the decoded mp4.

    Args:
        candidates: Candidates table; video paths relative to `stage_dir`.
        prompts: The round's prompts table (structured specs in ``spec_json``).
        stage_dir: The generation stage's folder.
        settings: World geometry of the clips.
    """
    specs = {
        pid: spec_from_json(spec)
        for pid, spec in zip(
            prompts[col.PROMPT_ID].to_pylist(), prompts[col.SPEC_JSON].to_pylist(), strict=True
        )
    }
    out = {}
    for row in candidates.select([col.CANDIDATE_ID, col.PROMPT_ID, col.VIDEO_PATH]).to_pylist():
        frames = read_frames(stage_dir / row[col.VIDEO_PATH], num_frames=None)
        out[row[col.CANDIDATE_ID]] = judge(frames, specs[row[col.PROMPT_ID]], settings)
    return out


def oracle_scores(judgements: dict[str, dict[str, Judgement]]) -> dict[str, dict[str, tuple[str, float]]]:
    """Candidate id → dimension → (verdict, score): the JSON-able form of `oracle_judgements`."""
    return {cid: {d: (j[d].verdict, j[d].score) for d in DIMENSIONS} for cid, j in judgements.items()}


def critic_agreement(labels: pa.Table, oracle: dict[str, dict[str, tuple[str, float]]]) -> dict[str, float]:
    """Share of pointwise critic verdicts equal to the oracle's, per dimension and overall.

    Returns:
        ``{"agreement/<dimension>": share, ..., "agreement/mean": mean over dimensions}``; an
        unparseable-only judgement (no verdict) counts as a disagreement.
    """
    hits: dict[str, list[float]] = defaultdict(list)
    for row in labels.select([col.KIND, col.VIDEO_ID, col.DIMENSION, col.VERDICT]).to_pylist():
        if row[col.KIND] != "pointwise" or row[col.VIDEO_ID] not in oracle:
            continue
        hits[row[col.DIMENSION]].append(
            float(row[col.VERDICT] == oracle[row[col.VIDEO_ID]][row[col.DIMENSION]][0])
        )
    out = {f"agreement/{d}": float(np.mean(hits[d])) for d in DIMENSIONS if hits[d]}
    if out:
        out["agreement/mean"] = float(np.mean(list(out.values())))
    return out


def pair_accuracy(pairs: pa.Table, oracle: dict[str, dict[str, tuple[str, float]]]) -> float:
    """Share of pairs whose winner has the higher mean oracle score (ties count half); NaN if no pairs."""
    if pairs.num_rows == 0:
        return float("nan")
    mean_score = {cid: float(np.mean([s for _, s in dims.values()])) for cid, dims in oracle.items()}
    hits = []
    for w, lo in zip(
        pairs[col.WINNER_CANDIDATE_ID].to_pylist(), pairs[col.LOSER_CANDIDATE_ID].to_pylist(), strict=True
    ):
        diff = mean_score[w] - mean_score[lo]
        hits.append(1.0 if diff > 0 else 0.5 if diff == 0 else 0.0)
    return float(np.mean(hits))
