"""The coarse filter's rules: each fires on its contradiction and not on consistent reasons."""

import pytest

from ipo_ray.annotate.correction import coarse_filter
from ipo_ray.annotate.reason_rules import contradiction
from ipo_ray.data import TableKind, read_table

from .conftest import WorldSet


@pytest.mark.parametrize(
    ("kind", "verdict", "reason", "rule"),
    [
        ("pointwise", "Good", "The square jitters between frames.", "defect_in_good"),
        ("pointwise", "Good", "Blurry edges on the circle.", "defect_in_good"),
        ("pointwise", "Good", "The circle disappears in some frames.", "defect_in_good"),
        ("pointwise", "Good", "The motion is smooth and steady, with no jitter or flicker.", None),
        ("pointwise", "Good", "Jitter-free and sharp.", None),
        ("pointwise", "Good", "It isn't blurred at all.", None),
        ("pointwise", "Good", "", None),
        ("pointwise", "Bad", "Perfectly smooth, sharp and clean.", "praise_in_bad"),
        ("pointwise", "Normal", "Matches the prompt.", "praise_in_bad"),
        ("pointwise", "Bad", "The circle jitters off a smooth path by 2.1 px.", None),
        ("pointwise", "Bad", "Smooth, but the colour is off.", None),
        ("pointwise", "Bad", "The background is not dark blue as the prompt asks.", None),
        ("pointwise", "Bad", "??", "no_words"),
        ("pointwise", "Normal", "Slightly soft edges.", None),
        ("pairwise", "A", "Video B is better: in video A, the circle jitters.", "other_side_better"),
        ("pairwise", "B", "I prefer A here.", "other_side_better"),
        ("pairwise", "A", "Video A is better: in video B, the circle jitters.", None),
        ("pairwise", "tie", "Video A is better on this dimension.", "side_better_in_tie"),
        ("pairwise", "tie", "Both clips are alike here: the motion is smooth.", None),
        ("pairwise", "A", "The two clips are alike here.", "alike_in_preference"),
        ("pairwise", "B", "Alike in colour, but B moves more smoothly.", None),
    ],
)
def test_rules(kind: str, verdict: str, reason: str, rule: str | None) -> None:
    assert contradiction(kind, verdict, reason) == rule


def test_the_world_seed_sets_reasons_fit_their_verdicts(world_set: WorldSet) -> None:
    # Simulated annotators give the oracle's reason for their (possibly flipped) verdict: no slips.
    rows = read_table(world_set.folder / "labels.parquet", TableKind.LABELS).to_pylist()
    kept, removed = coarse_filter(rows)
    assert removed == [] and len(kept) == len(rows) > 0
