"""The disagreement view's rows: where the current critic's verdict differs from the human vote.

Pure: it joins the human majority (`aggregate.Aggregate.voted`), every annotator's answer and reason,
and the stored critic verdicts on (task, dimension). Rows are sorted by the critic's certainty, most
certain first: a critic that is sure and still disagrees with three people is the likeliest critic
failure (or a human slip) — the place to look first. Where the critic has no majority verdict, or
the humans none, there is nothing to disagree with and the row is left out (the latter are already
in ``review.jsonl``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ipo_ray.annotate.records import CriticVerdict, StoredLabel
from ipo_ray.annotate.tasks import Task
from ipo_ray.vocab import DIMENSIONS


@dataclass(frozen=True)
class HumanLabel:
    """One annotator's answer and reason on the disagreeing dimension."""

    annotator: str
    answer: str
    reason: str


@dataclass(frozen=True)
class Disagreement:
    """One (task, dimension) where critic and humans differ.

    Attributes:
        task: The task (videos, prompt).
        dimension: The dimension.
        human_verdict: The annotators' majority answer.
        humans: Each annotator's answer and reason, in name order.
        critic: The critic's verdict, reason, certainty and votes.
    """

    task: Task
    dimension: str
    human_verdict: str
    humans: list[HumanLabel]
    critic: CriticVerdict


def find_disagreements(
    tasks: Sequence[Task],
    voted: Mapping[tuple[str, str], str],
    labels: Sequence[StoredLabel],
    verdicts: Sequence[CriticVerdict],
) -> list[Disagreement]:
    """Disagreements, most certain critic first (ties in queue order, then dimension order).

    Args:
        tasks: The studio's tasks in queue order.
        voted: {(task id, dimension): human majority answer} (`Aggregate.voted`).
        labels: Every stored label (for each annotator's reason).
        verdicts: Stored critic verdicts.
    """
    critic = {(v.task_id, v.dimension): v for v in verdicts}
    humans: dict[tuple[str, str], list[HumanLabel]] = {}
    for x in sorted(labels, key=lambda x: x.annotator):
        humans.setdefault((x.task_id, x.dimension), []).append(HumanLabel(x.annotator, x.answer, x.reason))
    rows = []
    for task in tasks:
        for dim in DIMENSIONS:
            key = (task.task_id, dim)
            judged = critic.get(key)
            if key not in voted or judged is None or judged.verdict is None or judged.verdict == voted[key]:
                continue
            rows.append(Disagreement(task, dim, voted[key], humans.get(key, []), judged))
    return sorted(rows, key=lambda r: -r.critic.certainty)  # stable: queue order among equals
