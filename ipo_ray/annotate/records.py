"""The studio's records as the store returns them: progress, labels, critic verdicts and skips."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """An annotator's progress: tasks labelled, and labelled plus still to come (skips excluded)."""

    done: int
    total: int


@dataclass(frozen=True)
class StoredLabel:
    """One submitted label of one dimension (a row of the ``labels`` table)."""

    task_id: str
    annotator: str
    dimension: str
    answer: str
    reason: str
    seconds: float


@dataclass(frozen=True)
class CriticVerdict:
    """A critic's voted verdict on one dimension of one task (a row of ``critic_verdicts``).

    Attributes:
        task_id: The task judged.
        dimension: One of `ipo_ray.vocab.DIMENSIONS`.
        version: The critic version that answered.
        verdict: Its majority verdict (Good/Normal/Bad or A/B/tie); None without a majority.
        reason: The reason given with the verdict.
        certainty: Majority votes / samples drawn, in [0, 1] (`ipo_ray.critic.voting`).
        votes: Votes per answer.
    """

    task_id: str
    dimension: str
    version: str
    verdict: str | None
    reason: str
    certainty: float
    votes: dict[str, int]


@dataclass(frozen=True)
class Skip:
    """A task an annotator skipped, with the problem they (or the page) reported."""

    task_id: str
    annotator: str
    problem: str | None
