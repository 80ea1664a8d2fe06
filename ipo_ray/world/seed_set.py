"""The world's seed "human" preference dataset, written as a real annotated set would be.

IPO §3.1 and LiFT §3.1 start from one round of human annotation: generated videos judged per
dimension (Good/Normal/Bad with a reason, and A/B/tie for two videos of one prompt) by at least
three annotators, then a majority vote. Here the videos are world renders with planted defects and,
for a configurable share of the items, clips sampled from a world generator (the base model, as in
IPO, whose annotators judged CogVideoX's own videos); the annotators are the simulated ones
(`annotators.py`), who judge the decoded mp4, as people would.

Output directory:
    videos/*.mp4            every clip
    prompts.parquet         one row per item (clip or pair), text and structured spec
    labels.parquet          voted labels, one row per (item, dimension) with a majority
    review.jsonl            items without a majority: flagged for a person, never guessed
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipo_ray.data import TableKind, is_committed, make_table, read_frames, write_mp4, write_table
from ipo_ray.data import columns as col
from ipo_ray.vocab import DIMENSIONS
from ipo_ray.world.annotators import Annotator, PairLabel, PointLabel, build_seed_labels, oracle_agreement
from ipo_ray.world.prompts import expand, spec_to_json
from ipo_ray.world.render import RenderSettings, render
from ipo_ray.world.spec import RenderSpec
from ipo_ray.world.web import sample_web_set

SOURCE = "world-annotators"
SAMPLE_BATCH = 48  # generated clips per sampler call

# (prompt texts, seeds) → one uint8 clip (T, H, W, 3) per text: a generator's samples.
ClipSampler = Callable[[Sequence[str], Sequence[int]], Sequence[np.ndarray]]
_VOTE_COLUMN = {
    "Good": col.VOTES_GOOD,
    "Normal": col.VOTES_NORMAL,
    "Bad": col.VOTES_BAD,
    "A": col.VOTES_A,
    "B": col.VOTES_B,
    "tie": col.VOTES_TIE,
}


@dataclass(frozen=True)
class SeedSetSummary:
    """What `build_seed_set` wrote and how good the votes are.

    Attributes:
        clips: videos written (pointwise clips plus both sides of every pair).
        labels: voted label rows written.
        no_majority: (item, dimension) judgements flagged for review instead of labelled.
        generated: videos among `clips` sampled from the generator rather than rendered.
        agreement: `oracle_agreement` of the votes: {"vote"|"single"|"no_majority": {dimension: share}}.
    """

    clips: int
    labels: int
    no_majority: int
    agreement: dict[str, dict[str, float]]
    generated: int = 0


def build_seed_set(
    out_dir: str | Path,
    *,
    num_clips: int,
    num_pairs: int,
    defect_rate: float,
    strength_range: tuple[float, float],
    seed: int,
    annotators: Sequence[Annotator],
    settings: RenderSettings,
    generated_share: float = 0.0,
    sampler: ClipSampler | None = None,
) -> SeedSetSummary:
    """Render, write, annotate and vote the seed set into `out_dir`.

    Args:
        out_dir: a directory without a committed seed set in it.
        num_clips: clips labelled pointwise.
        num_pairs: same-prompt pairs labelled pairwise; side B re-renders side A's prompt with
            another seed and an independently drawn defect (or none).
        defect_rate: share of renders with a planted defect.
        strength_range: (low, high) of planted defect strength.
        seed: seeds prompts, renders and defects.
        annotators: who labels (three in the papers).
        settings: clip geometry.
        generated_share: share of the clips and of the pairs whose videos `sampler` makes from the
            item's prompt text (a pair: two seeds of one prompt, like a round's candidates) instead
            of the renderer; their planted defects are unused.
        sampler: the generator's clips, needed when `generated_share` > 0.

    Raises:
        FileExistsError: `out_dir` already holds a committed seed set (tables are immutable).
        ValueError: a generated share without a sampler, or outside [0, 1].
    """
    out_dir = Path(out_dir)
    if is_committed(out_dir / "labels.parquet"):
        raise FileExistsError(f"{out_dir} already holds a seed set; choose another directory")
    if not 0.0 <= generated_share <= 1.0 or (generated_share > 0 and sampler is None):
        raise ValueError(f"generated_share {generated_share} needs a value in [0, 1] and, above 0, a sampler")
    renders = sample_web_set(num_clips + 2 * num_pairs, seed, defect_rate, strength_range)
    text_rng = np.random.default_rng(seed)
    point_specs = renders[:num_clips]
    pair_specs = [
        (a, RenderSpec(a.prompt, b.seed, b.defects))
        for a, b in zip(renders[num_clips::2], renders[num_clips + 1 :: 2], strict=True)
    ]

    # Prompt texts first, in item order (the text stream is the same with or without generated items).
    point_rows = [_prompt_row(f"clip-{i:05d}", spec, text_rng) for i, spec in enumerate(point_specs)]
    pair_rows = [_prompt_row(f"pair-{i:05d}", a, text_rng) for i, (a, _) in enumerate(pair_specs)]
    prompts = point_rows + pair_rows
    generated = _generated_clips(
        sampler,
        generated_share,
        [
            (row[col.PROMPT_ID], row[col.TEXT], spec.seed)
            for row, spec in zip(point_rows, point_specs, strict=True)
        ],
        [
            (row[col.PROMPT_ID], row[col.TEXT], a.seed, b.seed)
            for row, (a, b) in zip(pair_rows, pair_specs, strict=True)
        ],
        seed,
    )

    paths = {}
    point_items, pair_items = [], []
    for i, spec in enumerate(point_specs):
        item = f"clip-{i:05d}"
        frames, paths[item] = _write_clip(out_dir, item, spec, settings, generated.get(item))
        point_items.append((item, frames, spec.prompt))
    for i, (spec_a, spec_b) in enumerate(pair_specs):
        item = f"pair-{i:05d}"
        a, b = f"{item}-a", f"{item}-b"
        frames_a, paths[a] = _write_clip(out_dir, a, spec_a, settings, generated.get(a))
        frames_b, paths[b] = _write_clip(out_dir, b, spec_b, settings, generated.get(b))
        pair_items.append((item, frames_a, frames_b, spec_a.prompt))

    seed_labels = build_seed_labels(point_items, pair_items, annotators, settings)
    text = {row[col.PROMPT_ID]: row[col.TEXT] for row in prompts}
    rows = [_point_row(label, paths, text) for label in seed_labels.point if label.has_majority]
    rows += [_pair_row(label, paths, text) for label in seed_labels.pair if label.has_majority]
    review = [
        {"item": label.item_id, "dimension": label.dimension, "votes": dict(label.votes)}
        for label in (*seed_labels.point, *seed_labels.pair)
        if not label.has_majority
    ]
    # Videos first, then the tables that reference them: a crash leaves no table pointing at nothing.
    write_table(make_table(prompts, TableKind.PROMPTS), out_dir / "prompts.parquet", TableKind.PROMPTS)
    (out_dir / "review.jsonl").write_text("".join(json.dumps(r) + "\n" for r in review))
    write_table(make_table(rows, TableKind.LABELS), out_dir / "labels.parquet", TableKind.LABELS)
    return SeedSetSummary(len(paths), len(rows), len(review), oracle_agreement(seed_labels), len(generated))


def _generated_clips(
    sampler: ClipSampler | None,
    share: float,
    clips: Sequence[tuple[str, str, int]],
    pairs: Sequence[tuple[str, str, int, int]],
    seed: int,
) -> dict[str, np.ndarray]:
    """Video name → the sampler's clip, for a random `share` of the clips and of the pairs.

    Args:
        clips: (item id, prompt text, seed) per pointwise clip.
        pairs: (item id, prompt text, seed of side a, seed of side b) per pair.
    """
    if sampler is None or share == 0:
        return {}
    pick = np.random.default_rng([seed, 1])
    wanted = [(item, text, s) for item, text, s in _share_of(clips, share, pick)]
    for item, text, seed_a, seed_b in _share_of(pairs, share, pick):
        wanted += [(f"{item}-a", text, seed_a), (f"{item}-b", text, seed_b)]
    out = {}
    for first in range(0, len(wanted), SAMPLE_BATCH):
        chunk = wanted[first : first + SAMPLE_BATCH]
        clips_out = sampler([text for _, text, _ in chunk], [s for _, _, s in chunk])
        out |= {name: clip for (name, _, _), clip in zip(chunk, clips_out, strict=True)}
    return out


def _share_of(items: Sequence, share: float, rng: np.random.Generator) -> list:
    """A random `share` of `items` (rounded), in their original order."""
    chosen = rng.choice(len(items), size=round(share * len(items)), replace=False)
    return [items[i] for i in sorted(chosen)]


def _write_clip(
    out_dir: Path, name: str, spec: RenderSpec, settings: RenderSettings, frames: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """Write one clip (`frames`, else the render of `spec`); return the frames as decoded from the
    mp4 (what annotators see)."""
    path = out_dir / "videos" / f"{name}.mp4"
    write_mp4(path, render(spec, settings) if frames is None else frames, fps=settings.fps)
    return read_frames(path, num_frames=None), str(path.resolve())


def _prompt_row(item: str, spec: RenderSpec, rng: np.random.Generator) -> dict:
    return {
        col.PROMPT_ID: item,
        col.TEXT: expand(spec.prompt, rng),
        col.SPEC_JSON: spec_to_json(spec.prompt),
        col.SOURCE: SOURCE,
    }


def _votes(votes: tuple[tuple[str, int], ...]) -> dict[str, int]:
    counts = dict.fromkeys(_VOTE_COLUMN.values(), 0)
    for answer, n in votes:
        counts[_VOTE_COLUMN[answer]] = n
    return counts


def _label_row(label: PointLabel | PairLabel, answer: str, text: dict[str, str]) -> dict:
    assert label.dimension in DIMENSIONS
    return {
        col.LABEL_ID: f"{label.item_id}/{label.dimension}",
        col.PROMPT: text[label.item_id],
        col.DIMENSION: label.dimension,
        col.VERDICT: answer,
        col.REASON: label.reason,
        col.CERTAINTY: label.agreement,
        col.CRITIC_VERSION: None,
        col.ANNOTATOR: None,
        col.SOURCE: SOURCE,
        **_votes(label.votes),
    }


def _point_row(label: PointLabel, paths: dict[str, str], text: dict[str, str]) -> dict:
    return {
        **_label_row(label, label.verdict, text),
        col.KIND: "pointwise",
        col.VIDEO_ID: label.item_id,
        col.VIDEO_PATH: paths[label.item_id],
        col.VIDEO_ID_B: None,
        col.VIDEO_PATH_B: None,
    }


def _pair_row(label: PairLabel, paths: dict[str, str], text: dict[str, str]) -> dict:
    a, b = f"{label.item_id}-a", f"{label.item_id}-b"
    return {
        **_label_row(label, label.preference, text),
        col.KIND: "pairwise",
        col.VIDEO_ID: a,
        col.VIDEO_PATH: paths[a],
        col.VIDEO_ID_B: b,
        col.VIDEO_PATH_B: paths[b],
    }
