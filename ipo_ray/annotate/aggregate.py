"""From the studio's labels to the seed set: majority vote, agreement, gold accuracy, tables.

Per ordinary task and dimension the annotators' answers are voted with the seed builder's rule
(`ipo_ray.world.annotators.majority_vote`: a strict majority, else flagged for review — never
guessed). The voted row's reason is the first reason (annotators in name order) given with the
winning answer, as the seed builder does. Tasks with fewer labels than they need are left out and
counted as incomplete. Gold tasks are not voted: they measure each annotator. A complete review
task (batch ``review``: a relabel from the disagreement view or the correct command) replaces the
vote of the earlier task of the same item: the newest human judgement wins.

Output folder (`write_export`):
    labels.parquet          voted labels, the seed set the critic trains on (labels schema)
    annotations.parquet     every annotation, one row per (task, annotator, dimension), annotator set
    review.jsonl            (task, dimension) without a majority, with their votes
    report.json             counts, Fleiss' kappa per kind and dimension, gold accuracy and
                            seconds per annotator, skips with their problems
"""

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from ipo_ray.annotate.agreement import fleiss_kappa
from ipo_ray.annotate.records import StoredLabel
from ipo_ray.annotate.store import Store
from ipo_ray.annotate.tasks import REVIEW_BATCH, Task, item_task_id
from ipo_ray.data import TableKind, make_table, write_table
from ipo_ray.data import columns as col
from ipo_ray.data.atomic import write_bytes_atomic
from ipo_ray.data.schemas import ANSWERS, VOTE_COLUMNS
from ipo_ray.vocab import DIMENSIONS
from ipo_ray.world.annotators import majority_vote

SOURCE = "studio"


@dataclass(frozen=True)
class Report:
    """What the aggregation found.

    Attributes:
        tasks: Ordinary tasks in the queue.
        complete: Ordinary tasks with at least the labels they need (these are voted).
        labels: Voted label rows written.
        no_majority: (task, dimension) flagged for review.
        kappa: {"<kind>/<dimension>": Fleiss' kappa} over complete tasks (absent: no such task).
        gold_accuracy: {annotator: share of their gold answers equal to the known ones}.
        gold_answers: {annotator: gold answers given}.
        seconds: {annotator: median seconds per task}.
        skips: [{task, annotator, problem}] of every skipped assignment.
        superseded: Complete tasks whose vote a complete review task of their item replaced.
    """

    tasks: int
    complete: int
    labels: int
    no_majority: int
    kappa: dict[str, float]
    gold_accuracy: dict[str, float]
    gold_answers: dict[str, int]
    seconds: dict[str, float]
    skips: list[dict[str, str | None]] = field(default_factory=list)
    superseded: int = 0


@dataclass(frozen=True)
class Aggregate:
    """Rows to write and the report; `voted` is {(task id, dimension): majority answer} of `labels`."""

    labels: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    review: list[dict[str, Any]]
    report: Report
    voted: dict[tuple[str, str], str] = field(default_factory=dict)


def aggregate(store: Store) -> Aggregate:
    """Votes, agreement and gold accuracy over everything stored so far."""
    tasks = {t.task_id: t for t in store.tasks()}
    by_task: dict[str, list[StoredLabel]] = defaultdict(list)
    for label in store.labels():
        by_task[label.task_id].append(label)

    rows, review, kappa_counts = [], [], defaultdict(list)
    ordinary = [t for t in tasks.values() if t.gold is None]
    complete = [t for t in ordinary if len({x.annotator for x in by_task[t.task_id]}) >= t.needed]
    reviewed = {_item(t) for t in complete if t.batch == REVIEW_BATCH}
    superseded = {t.task_id for t in complete if t.batch != REVIEW_BATCH and _item(t) in reviewed}
    voted: dict[tuple[str, str], str] = {}
    for task in complete:
        for dim in DIMENSIONS:
            given = sorted(
                (x for x in by_task[task.task_id] if x.dimension == dim), key=lambda x: x.annotator
            )
            answers = [x.answer for x in given]
            winner, votes, agreement = majority_vote(answers)
            # Fleiss' kappa wants the same number (≥ 2) of ratings per item.
            if len(answers) == task.needed >= 2:
                kappa_counts[f"{task.kind}/{dim}"].append([answers.count(a) for a in ANSWERS[task.kind]])
            if task.task_id in superseded:
                continue
            if winner is None:
                review.append({"task": task.task_id, "dimension": dim, "votes": dict(votes)})
                continue
            reason = next((x.reason for x in given if x.answer == winner and x.reason), "")
            voted[(task.task_id, dim)] = winner
            rows.append(
                _row(task, dim, winner, reason, dict(votes), agreement, None, f"{task.task_id}/{dim}")
            )

    annotations = [
        _row(
            tasks[x.task_id],
            x.dimension,
            x.answer,
            x.reason,
            {x.answer: 1},
            1.0,
            x.annotator,
            f"{x.task_id}/{x.annotator}/{x.dimension}",
        )
        for labels in by_task.values()
        for x in labels
    ]
    report = Report(
        tasks=len(ordinary),
        complete=len(complete),
        labels=len(rows),
        no_majority=len(review),
        kappa={key: fleiss_kappa(counts) for key, counts in sorted(kappa_counts.items())},
        **_gold(tasks, by_task),
        seconds=_seconds(by_task),
        skips=[asdict(s) for s in store.skips()],
        superseded=len(superseded),
    )
    return Aggregate(rows, annotations, review, report, voted)


def write_export(result: Aggregate, out_dir: str | Path) -> None:
    """Writes the aggregate into `out_dir` (a new folder: committed tables are immutable).

    Raises:
        FileExistsError: `out_dir` already holds an export.
    """
    out_dir = Path(out_dir)
    # The review list and report first: the labels table's manifest, written last, commits the export.
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(
        out_dir / "review.jsonl", "".join(json.dumps(r) + "\n" for r in result.review).encode()
    )
    write_bytes_atomic(out_dir / "report.json", json.dumps(asdict(result.report), indent=1).encode() + b"\n")
    write_table(
        make_table(result.annotations, TableKind.LABELS), out_dir / "annotations.parquet", TableKind.LABELS
    )
    write_table(make_table(result.labels, TableKind.LABELS), out_dir / "labels.parquet", TableKind.LABELS)


def _row(
    task: Task,
    dim: str,
    answer: str,
    reason: str,
    votes: dict[str, int],
    certainty: float,
    annotator: str | None,
    label_id: str,
) -> dict[str, Any]:
    counts = {c: 0 for columns in VOTE_COLUMNS.values() for c in columns.values()}
    counts |= {VOTE_COLUMNS[task.kind][a]: n for a, n in votes.items()}
    return {
        col.LABEL_ID: label_id,
        col.KIND: task.kind,
        col.VIDEO_ID: task.video_id,
        col.VIDEO_PATH: task.video_path,
        col.VIDEO_ID_B: task.video_id_b,
        col.VIDEO_PATH_B: task.video_path_b,
        col.PROMPT: task.prompt,
        col.DIMENSION: dim,
        col.VERDICT: answer,
        col.REASON: reason,
        col.CERTAINTY: certainty,
        col.CRITIC_VERSION: None,
        col.ANNOTATOR: annotator,
        col.SOURCE: SOURCE,
        **counts,
    }


def _item(task: Task) -> str:
    return item_task_id(task.kind, task.video_id, task.video_id_b)


def _gold(tasks: dict[str, Task], by_task: dict[str, list[StoredLabel]]) -> dict[str, dict]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for task_id, labels in by_task.items():
        known = tasks[task_id].gold
        if known is None:
            continue
        for x in labels:
            if x.dimension in known:
                hits[x.annotator].append(x.answer == known[x.dimension])
    return {
        "gold_accuracy": {who: sum(h) / len(h) for who, h in sorted(hits.items())},
        "gold_answers": {who: len(h) for who, h in sorted(hits.items())},
    }


def _seconds(by_task: dict[str, list[StoredLabel]]) -> dict[str, float]:
    per_task: dict[str, dict[str, float]] = defaultdict(dict)
    for task_id, labels in by_task.items():
        for x in labels:
            per_task[x.annotator][task_id] = x.seconds
    return {who: median(times.values()) for who, times in sorted(per_task.items())}
