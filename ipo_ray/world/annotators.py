"""Simulated human annotators and the seed "human" dataset (IPO §3.1: several annotators, majority vote).

Each annotator is the noise-free oracle plus its own, independent noise: a per-dimension
strictness (thresholds scaled by a log-normal factor: some annotators are lenient, some strict) and
random flips to an adjacent label (Good↔Normal↔Bad, A↔tie↔B). Three annotators label every item; a
label needs a strict majority, otherwise the item is flagged `has_majority=False` with no label —
never guessed.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ipo_ray.vocab import DIMENSIONS, Dimension, Preference, Verdict
from ipo_ray.world.measure import Measurements, measure
from ipo_ray.world.oracle import TIE_MARGIN, Judgement, prefer, verdicts
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.spec import PromptSpec


@dataclass(frozen=True)
class Annotator:
    """One simulated annotator.

    Attributes:
        annotator_id: a stable name, e.g. "ann0".
        strictness: per-dimension threshold multiplier (> 1 stricter, < 1 more lenient), in DIMENSIONS order.
        flip_rate: probability that a pointwise verdict moves to an adjacent one.
        pair_flip_rate: probability that a pairwise preference moves to an adjacent one (A↔tie↔B).
        pair_score_noise: std of noise added to each clip's score before comparing.
        seed: seeds this annotator's random flips.
    """

    annotator_id: str
    strictness: tuple[float, ...]
    flip_rate: float
    pair_flip_rate: float
    pair_score_noise: float
    seed: int

    def strictness_by_dim(self) -> dict[Dimension, float]:
        return dict(zip(DIMENSIONS, self.strictness, strict=True))


def make_annotators(
    n: int = 3,
    seed: int = 0,
    strictness_spread: float = 0.2,
    flip_rate: float = 0.15,
    pair_flip_rate: float = 0.15,
    pair_score_noise: float = 0.05,
) -> list[Annotator]:
    """Draw `n` annotators with independent leniency/strictness.

    Args:
        n: number of annotators (IPO uses at least three).
        seed: seeds the draw and each annotator's flips.
        strictness_spread: std of log(strictness) per annotator and dimension.
        flip_rate: each annotator's chance to move a pointwise verdict to an adjacent one.
        pair_flip_rate: each annotator's chance to move a preference to an adjacent one.
        pair_score_noise: std of score noise before a pairwise comparison.

    Returns:
        `n` `Annotator`s.
    """
    if n < 1:
        raise ValueError(f"need at least one annotator, got {n}")
    for name, rate in (("flip_rate", flip_rate), ("pair_flip_rate", pair_flip_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    return [
        Annotator(
            annotator_id=f"ann{i}",
            strictness=tuple(float(x) for x in np.exp(rng.normal(0.0, strictness_spread, len(DIMENSIONS)))),
            flip_rate=flip_rate,
            pair_flip_rate=pair_flip_rate,
            pair_score_noise=pair_score_noise,
            seed=int(rng.integers(2**31 - 1)),
        )
        for i in range(n)
    ]


_ADJACENT_VERDICT: dict[str, tuple[Verdict, ...]] = {
    "Good": ("Normal",),
    "Normal": ("Good", "Bad"),
    "Bad": ("Normal",),
}
_ADJACENT_PREF: dict[str, tuple[Preference, ...]] = {"A": ("tie",), "tie": ("A", "B"), "B": ("tie",)}


def annotate_point(
    annotator: Annotator,
    m: Measurements,
    prompt: PromptSpec,
    rng: np.random.Generator,
    settings: RenderSettings | None = None,
) -> dict[Dimension, Judgement]:
    """One annotator's pointwise judgements of a measured clip (its thresholds, then random flips)."""
    own = verdicts(m, prompt, settings, annotator.strictness_by_dim())
    out = {}
    for dim in DIMENSIONS:
        j = own[dim]
        if rng.random() < annotator.flip_rate:
            options = _ADJACENT_VERDICT[j.verdict]
            new = options[int(rng.integers(len(options)))]
            # The reason follows the new verdict: what is right (very lenient eyes) or the worst problem.
            probe = 1e-3 if new == "Good" else 1e3
            reason = verdicts(m, prompt, settings, {dim: probe})[dim].reason
            j = Judgement(verdict=new, score=j.score, reason=reason)
        out[dim] = j
    return out


def annotate_pair(
    annotator: Annotator,
    m_a: Measurements,
    m_b: Measurements,
    prompt: PromptSpec,
    rng: np.random.Generator,
    settings: RenderSettings | None = None,
) -> dict[Dimension, Preference]:
    """One annotator's pairwise preferences between two measured clips of the same prompt."""
    strict = annotator.strictness_by_dim()
    ja, jb = verdicts(m_a, prompt, settings, strict), verdicts(m_b, prompt, settings, strict)
    noisy_a = {
        d: Judgement(j.verdict, j.score + rng.normal(0, annotator.pair_score_noise), j.reason)
        for d, j in ja.items()
    }
    noisy_b = {
        d: Judgement(j.verdict, j.score + rng.normal(0, annotator.pair_score_noise), j.reason)
        for d, j in jb.items()
    }
    out = {}
    for dim, pj in prefer(noisy_a, noisy_b, TIE_MARGIN).items():
        pref = pj.preference
        if rng.random() < annotator.pair_flip_rate:
            options = _ADJACENT_PREF[pref]
            pref = options[int(rng.integers(len(options)))]
        out[dim] = pref
    return out


def generic_pair_reason(preference: str) -> str:
    """The reason given for a preference the oracle's own comparison does not support."""
    if preference == "A":
        return "Video A is better on this dimension."
    if preference == "B":
        return "Video B is better on this dimension."
    return "The two clips are alike here."


@dataclass(frozen=True)
class PointLabel:
    """A voted pointwise label. `verdict` is None when no verdict has a strict majority."""

    item_id: str
    dimension: Dimension
    verdict: Verdict | None
    reason: str
    votes: tuple[tuple[str, int], ...]  # (verdict, count), most votes first
    agreement: float  # share of annotators who gave the most common verdict
    has_majority: bool


@dataclass(frozen=True)
class PairLabel:
    """A voted pairwise label. `preference` is None when no preference has a strict majority."""

    item_id: str
    dimension: Dimension
    preference: Preference | None
    reason: str
    votes: tuple[tuple[str, int], ...]
    agreement: float
    has_majority: bool


@dataclass(frozen=True)
class RawLabel:
    """One annotator's (or the oracle's, annotator_id "oracle") label of one item and dimension."""

    item_id: str
    annotator_id: str
    dimension: Dimension
    label: str  # a Verdict for pointwise items, a Preference for pairwise ones


@dataclass(frozen=True)
class SeedLabels:
    """The seed dataset: voted labels plus every raw label (annotators and the noise-free oracle)."""

    point: tuple[PointLabel, ...]
    pair: tuple[PairLabel, ...]
    raw_point: tuple[RawLabel, ...]
    raw_pair: tuple[RawLabel, ...]


def majority_vote(labels: Sequence[str]) -> tuple[str | None, tuple[tuple[str, int], ...], float]:
    """Strict-majority vote over one item's labels (the seed builder's and the studio's rule).

    Args:
        labels: one label per annotator, in annotator order (ties in the counts keep first-seen order).

    Returns:
        (winner, or None when no label has more than half the votes; (label, count) most votes first;
        share of the most common label).
    """
    counts = Counter(labels).most_common()
    top, top_n = counts[0]
    winner = top if top_n * 2 > len(labels) else None
    return winner, tuple(counts), top_n / len(labels)


def build_seed_labels(
    point_items: Sequence[tuple[str, np.ndarray, PromptSpec]],
    pair_items: Sequence[tuple[str, np.ndarray, np.ndarray, PromptSpec]],
    annotators: Sequence[Annotator] | None = None,
    settings: RenderSettings | None = None,
) -> SeedLabels:
    """Label items with several simulated annotators and vote.

    Args:
        point_items: (item id, frames uint8 (T, H, W, 3), prompt) for pointwise scoring.
        pair_items: (item id, frames A, frames B, prompt) for pairwise ranking.
        annotators: who labels; `make_annotators()` (three) when None.
        settings: world geometry, `RenderSettings()` when None.

    Returns:
        `SeedLabels`: one voted record per item and dimension, and all raw labels.
    """
    annotators = list(annotators) if annotators is not None else make_annotators()
    rngs = {a.annotator_id: np.random.default_rng(a.seed) for a in annotators}
    point, pair, raw_point, raw_pair = [], [], [], []
    for item_id, frames, prompt in point_items:
        m = measure(frames, prompt, settings)
        oracle = verdicts(m, prompt, settings)
        given = {
            a.annotator_id: annotate_point(a, m, prompt, rngs[a.annotator_id], settings) for a in annotators
        }
        for dim in DIMENSIONS:
            raw_point.append(RawLabel(item_id, "oracle", dim, oracle[dim].verdict))
            raw_point.extend(RawLabel(item_id, who, dim, j[dim].verdict) for who, j in given.items())
            winner, votes, agreement = majority_vote([j[dim].verdict for j in given.values()])
            reason = next((j[dim].reason for j in given.values() if j[dim].verdict == winner), "")
            point.append(PointLabel(item_id, dim, winner, reason, votes, agreement, winner is not None))
    for item_id, frames_a, frames_b, prompt in pair_items:
        m_a, m_b = measure(frames_a, prompt, settings), measure(frames_b, prompt, settings)
        oracle_pair = prefer(verdicts(m_a, prompt, settings), verdicts(m_b, prompt, settings))
        given = {
            a.annotator_id: annotate_pair(a, m_a, m_b, prompt, rngs[a.annotator_id], settings)
            for a in annotators
        }
        for dim in DIMENSIONS:
            raw_pair.append(RawLabel(item_id, "oracle", dim, oracle_pair[dim].preference))
            raw_pair.extend(RawLabel(item_id, who, dim, p[dim]) for who, p in given.items())
            winner, votes, agreement = majority_vote([p[dim] for p in given.values()])
            reason = oracle_pair[dim].reason if winner == oracle_pair[dim].preference else ""
            if winner is not None and not reason:
                reason = generic_pair_reason(winner)
            pair.append(PairLabel(item_id, dim, winner, reason, votes, agreement, winner is not None))
    return SeedLabels(tuple(point), tuple(pair), tuple(raw_point), tuple(raw_pair))


def oracle_agreement(labels: SeedLabels) -> dict[str, dict[Dimension, float]]:
    """How often labels match the noise-free oracle, per dimension (pointwise and pairwise pooled).

    Returns:
        {"vote": share of items whose voted label equals the oracle's (no majority counts as a miss),
         "single": mean over annotators of the share of their labels equal to the oracle's,
         "no_majority": share of items without a majority}.
    """
    oracle = {
        (r.item_id, r.dimension): r.label
        for r in labels.raw_point + labels.raw_pair
        if r.annotator_id == "oracle"
    }
    out: dict[str, dict[Dimension, float]] = {"vote": {}, "single": {}, "no_majority": {}}
    voted = [(r.item_id, r.dimension, r.verdict) for r in labels.point] + [
        (r.item_id, r.dimension, r.preference) for r in labels.pair
    ]
    raws = [r for r in labels.raw_point + labels.raw_pair if r.annotator_id != "oracle"]
    for dim in DIMENSIONS:
        mine = [(i, v) for i, d, v in voted if d == dim]
        if not mine:
            continue
        out["vote"][dim] = float(np.mean([v == oracle[(i, dim)] for i, v in mine]))
        out["no_majority"][dim] = float(np.mean([v is None for _, v in mine]))
        per_annotator: dict[str, list[bool]] = {}
        for r in raws:
            if r.dimension == dim:
                per_annotator.setdefault(r.annotator_id, []).append(r.label == oracle[(r.item_id, dim)])
        out["single"][dim] = float(np.mean([np.mean(v) for v in per_annotator.values()]))
    return out
