"""LiFT §3.1's data correction: coarse filtering, then split-half cross-labelling by a critic.

Stages over a labels table (one row per item and dimension):

1. Coarse filter (`reason_rules.contradiction`): a label whose reason contradicts its verdict is
   removed, as LiFT removes "obvious annotation errors".
2. Split-half cross-labelling: the items are split in two halves (by item, so no video of a half is
   trained on when that half is judged). A critic trained on half 1 labels half 2; where its verdict
   equals the human one the label is kept, else it is sent to human review; then the halves swap.
   Every surviving label is judged exactly once, by a critic that never saw it.

Nothing is changed automatically: a disagreement goes to people (review tasks in the studio, whose
vote then replaces the item's), never to the critic's guess — so ``changed`` is 0 at both stages
and is reported to make that explicit.

The critic of each half is injected (`JudgeHalf`): `HalfCritic` trains one with `train_critic` on a
small budget and reads its first-token verdicts; tests may pass any function.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ipo_ray.annotate.reason_rules import contradiction
from ipo_ray.data import TableKind, make_table, write_table
from ipo_ray.data import columns as col
from ipo_ray.data.atomic import write_bytes_atomic

Row = dict[str, Any]
# (rows to train on, rows to judge, half index 0 or 1) → the critic's verdict of each judged row.
JudgeHalf = Callable[[list[Row], list[Row], int], list[str]]


@dataclass(frozen=True)
class StageCount:
    """What one stage did with the labels it was given."""

    stage: str
    given: int
    kept: int
    removed: int
    changed: int
    review: int


@dataclass(frozen=True)
class Correction:
    """The corrected labels and where every other label went.

    Attributes:
        kept: Label rows that passed every stage (labels schema).
        removed: Rows the coarse filter removed, each with ``rule`` (the rule it broke).
        review: Rows the cross-labelling sent to review, each with ``critic_verdict`` and ``half``.
        stages: Counts per stage, then ``total``.
    """

    kept: list[Row]
    removed: list[Row]
    review: list[Row]
    stages: list[StageCount]


def item_of(row: Row) -> tuple[str, str | None]:
    """What a label row judges: its video, or its pair of videos."""
    return row[col.VIDEO_ID], row[col.VIDEO_ID_B]


def coarse_filter(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """(kept, removed); removed rows carry ``rule``, the name of the contradiction found."""
    kept, removed = [], []
    for row in rows:
        rule = contradiction(row[col.KIND], row[col.VERDICT], row[col.REASON])
        if rule is None:
            kept.append(row)
        else:
            removed.append({**row, "rule": rule})
    return kept, removed


def split_halves(rows: Sequence[Row], seed: int) -> tuple[list[Row], list[Row]]:
    """Two halves by item (a seeded shuffle of the sorted items; the first half gets the odd one).

    Raises:
        ValueError: Fewer than two items: one half would have nothing to train on.
    """
    items = sorted({item_of(r) for r in rows}, key=lambda i: (i[0], i[1] or ""))
    if len(items) < 2:
        raise ValueError(f"split-half cross-labelling needs at least 2 items, got {len(items)}")
    order = np.random.default_rng(seed).permutation(len(items))
    first = {items[i] for i in order[: (len(items) + 1) // 2]}
    return [r for r in rows if item_of(r) in first], [r for r in rows if item_of(r) not in first]


def correct(rows: Sequence[Row], judge_half: JudgeHalf, seed: int) -> Correction:
    """Runs both stages over label rows (see the module docstring).

    Args:
        rows: Label rows (labels schema), one per item and dimension.
        judge_half: Trains a critic on its first argument and returns its verdicts on the second.
        seed: Seeds the split.
    """
    passed, removed = coarse_filter(rows)
    stages = [StageCount("coarse filter", len(rows), len(passed), len(removed), 0, 0)]
    halves = split_halves(passed, seed)
    kept, review = [], []
    for half in (0, 1):
        train, judged = halves[1 - half], halves[half]
        verdicts = judge_half(train, judged, half)
        if len(verdicts) != len(judged):
            raise RuntimeError(f"half {half + 1}: {len(verdicts)} critic verdicts for {len(judged)} labels")
        agree = [r for r, v in zip(judged, verdicts, strict=True) if v == r[col.VERDICT]]
        differ = [
            {**r, "critic_verdict": v, "half": half + 1}
            for r, v in zip(judged, verdicts, strict=True)
            if v != r[col.VERDICT]
        ]
        kept += agree
        review += differ
        name = f"cross-label half {half + 1} (critic of half {2 - half})"
        stages.append(StageCount(name, len(judged), len(agree), 0, 0, len(differ)))
    stages.append(StageCount("total", len(rows), len(kept), len(removed), 0, len(review)))
    return Correction(kept, removed, review, stages)


def format_stages(stages: Sequence[StageCount]) -> str:
    """A text table of the stage counts."""
    head = f"{'stage':36s}{'given':>7s}{'kept':>7s}{'removed':>9s}{'changed':>9s}{'review':>8s}"
    lines = [head] + [
        f"{s.stage:36s}{s.given:7d}{s.kept:7d}{s.removed:9d}{s.changed:9d}{s.review:8d}" for s in stages
    ]
    return "\n".join(lines)


def report(result: Correction, queued: int) -> dict[str, Any]:
    """The JSON report: stage counts, rules broken, review tasks queued."""
    rules: dict[str, int] = {}
    for row in result.removed:
        rules[row["rule"]] = rules.get(row["rule"], 0) + 1
    return {
        "stages": [asdict(s) for s in result.stages],
        "removed_by_rule": dict(sorted(rules.items())),
        "review_tasks_queued": queued,
    }


def write_correction(result: Correction, summary: dict[str, Any], out_dir: str | Path) -> None:
    """Writes ``removed.jsonl``, ``review.jsonl``, ``report.json`` and, last (it commits the
    folder), ``labels.parquet`` of the kept labels into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("removed.jsonl", result.removed), ("review.jsonl", result.review)):
        write_bytes_atomic(out / name, "".join(json.dumps(r) + "\n" for r in rows).encode())
    write_bytes_atomic(out / "report.json", json.dumps(summary, indent=1).encode() + b"\n")
    write_table(make_table(result.kept, TableKind.LABELS), out / "labels.parquet", TableKind.LABELS)
