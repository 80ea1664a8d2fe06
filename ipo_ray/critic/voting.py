"""Self-consistency voting over n sampled answers, certainty, the pseudo-label filter and rewards.

Dual-IPO's SRPO samples several reasoning paths, votes, and keeps only confident preferences. Here:

- **Majority verdict**: the verdict with the most votes among the parsed answers. If two or more
  verdicts share the top count, or nothing parsed, there is no majority and the verdict is None: a
  tie is not broken by guessing. (For pairwise labels a vote tie between A and B is also *not*
  turned into the answer "tie": "tie" is an answer the model can give, a split vote is not one.)
- **Certainty** = votes for the majority verdict / all n samples drawn. Unparseable answers stay in
  the denominator, so they count as dissent: 6 Good + 2 unparseable of 8 gives 0.75, the same as
  6 Good + 2 Bad. Equivalently, certainty = (agreement fraction among the parsed answers) × (share
  of answers that parsed). This keeps a critic that mostly babbles from producing "confident"
  pseudo-labels out of its one readable answer. Without a majority, certainty is 0.
- **First-token read** (`critic.vote=first_token`): when the answers carry the critic's verdict
  distribution at the answer's first token (`ParsedAnswer.first_token`, one per question, both
  video orders averaged when pooled), the verdict is its most likely verdict and the certainty its
  probability; the vote counts and the reason still come from the n sampled answers (the reason of
  the first sample that agrees, "" if none does). This is the read the critic's accuracy is
  measured with (`evaluate.first_token_probabilities`). Sampled votes at temperature 1 agreed less
  with the world's oracle (a judge-first world critic on one render set, n = 8, both orders:
  pointwise 0.863 against 0.891, pairwise 0.692 against 0.792): a split vote is no verdict, while
  the distribution still has a most likely answer. No verdict token among the
  engine's most likely tokens (an untrained critic) is no verdict.
- **Pseudo-label filter**: keep a vote when it has a majority and certainty ≥ a threshold.
- **Reward** (LiFT Eq. 2): each dimension's majority verdict maps through LiFT's scores
  {Good: 0.9, Normal: 0.2, Bad: 0.05} (`verdict_reward`); a video's reward, the mean over the
  three dimensions, is `ipo_ray.align.losses.lift_reward` (one definition, shared with training).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ipo_ray.critic.parse import ParsedAnswer
from ipo_ray.critic.templates import Kind
from ipo_ray.vocab import LIFT_VERDICT_REWARD, PREFERENCES, VERDICTS

_ANSWERS: dict[str, tuple[str, ...]] = {"pointwise": VERDICTS, "pairwise": PREFERENCES}
# Label-table vote columns per answer (names from ipo_ray.data.columns, spelled out to keep this
# module free of the data package's pyarrow imports).
_VOTE_COLUMNS: dict[str, str] = {
    "Good": "votes_good",
    "Normal": "votes_normal",
    "Bad": "votes_bad",
    "A": "votes_a",
    "B": "votes_b",
    "tie": "votes_tie",
}


@dataclass(frozen=True)
class VoteResult:
    """The outcome of voting over one question's n samples.

    Attributes:
        kind: ``"pointwise"`` or ``"pairwise"``.
        verdict: The majority verdict, or None when nothing parsed or the top count is shared.
        votes: Votes per possible answer of `kind`, every answer present (zeros included).
        num_samples: n, answers drawn, parsed or not.
        num_unparseable: Answers the parser could not read.
        certainty: Majority votes / num_samples, in [0, 1]; 0 without a majority.
        reason: The reason of the first answer that gave the majority verdict ("" without one).
        read: ``"samples"`` (majority of the sampled answers) or ``"first_token"`` (the most
            likely verdict at the answer's first token; certainty is its probability).
        probabilities: The first-token read's verdict distribution; None for ``"samples"``.
    """

    kind: Kind
    verdict: str | None
    votes: dict[str, int]
    num_samples: int
    num_unparseable: int
    certainty: float
    reason: str
    read: Literal["samples", "first_token"] = "samples"
    probabilities: dict[str, float] | None = None

    @property
    def tied(self) -> bool:
        """Whether two or more verdicts share the top count (so there is no majority)."""
        top = max(self.votes.values())
        return top > 0 and sum(count == top for count in self.votes.values()) > 1

    def vote_columns(self) -> dict[str, int]:
        """The six label-table vote columns (``votes_good`` … ``votes_tie``); the other kind's are 0."""
        columns = dict.fromkeys(_VOTE_COLUMNS.values(), 0)
        for answer, count in self.votes.items():
            columns[_VOTE_COLUMNS[answer]] = count
        return columns


def vote(answers: Sequence[ParsedAnswer], kind: Kind) -> VoteResult:
    """Majority vote and certainty over one question's sampled answers (rules in the module docstring).

    Args:
        answers: The n parsed samples for one (video or pair, dimension), n ≥ 1.
        kind: ``"pointwise"`` or ``"pairwise"``; every parsed verdict must belong to it.

    Raises:
        ValueError: no answers, or a verdict of the other kind.
    """
    if not answers:
        raise ValueError("cannot vote over zero answers; ask the backend for n ≥ 1 samples")
    allowed = _ANSWERS[kind]
    votes = dict.fromkeys(allowed, 0)
    for answer in answers:
        if answer.verdict is None:
            continue
        if answer.verdict not in votes:
            raise ValueError(f"{kind} vote got verdict {answer.verdict!r}; expected one of {allowed}")
        votes[answer.verdict] += 1
    unparseable = sum(not a.parsed for a in answers)
    reads = [a.first_token for a in answers if a.first_token is not None]
    if reads:
        return _first_token_vote(answers, kind, votes, unparseable, reads)
    top = max(votes.values())
    leaders = [v for v in allowed if votes[v] == top]
    if top == 0 or len(leaders) > 1:
        return VoteResult(kind, None, votes, len(answers), unparseable, 0.0, "")
    verdict = leaders[0]
    reason = next(a.reason for a in answers if a.verdict == verdict)
    return VoteResult(kind, verdict, votes, len(answers), unparseable, top / len(answers), reason)


def _first_token_vote(
    answers: Sequence[ParsedAnswer],
    kind: Kind,
    votes: dict[str, int],
    unparseable: int,
    reads: Sequence[dict[str, float]],
) -> VoteResult:
    """The first-token read (module docstring): the mean of the answers' verdict distributions."""
    allowed = _ANSWERS[kind]
    if any(set(r) - set(allowed) for r in reads):
        raise ValueError(f"{kind} first-token read over {[sorted(r) for r in reads]}; expected {allowed}")
    mean = {v: sum(r.get(v, 0.0) for r in reads) / len(reads) for v in allowed}
    top = max(mean.values())
    leaders = [v for v in allowed if mean[v] == top]
    verdict = leaders[0] if top > 0 and len(leaders) == 1 else None
    reason = next((a.reason for a in answers if verdict is not None and a.verdict == verdict), "")
    certainty = mean[verdict] if verdict is not None else 0.0
    return VoteResult(kind, verdict, votes, len(answers), unparseable, certainty, reason, "first_token", mean)


def is_confident(result: VoteResult, threshold: float) -> bool:
    """Whether a vote is a usable pseudo-label: it has a majority and certainty ≥ `threshold`.

    Args:
        result: From `vote`.
        threshold: In (0, 1]; e.g. 0.75 keeps 6-of-8 agreement and better.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"certainty threshold must be in (0, 1], got {threshold}")
    return result.verdict is not None and result.certainty >= threshold


def confident(results: Sequence[VoteResult], threshold: float) -> list[VoteResult]:
    """The votes that pass `is_confident`, in order (Dual-IPO's preference certainty filter)."""
    return [r for r in results if is_confident(r, threshold)]


def verdict_reward(verdict: str) -> float:
    """LiFT's score s(verdict): Good 0.9, Normal 0.2, Bad 0.05.

    Raises:
        ValueError: `verdict` is not a pointwise verdict (None included: no reward is made up).
    """
    if verdict not in LIFT_VERDICT_REWARD:
        raise ValueError(
            f"no LiFT reward for verdict {verdict!r}; expected one of {tuple(LIFT_VERDICT_REWARD)}"
        )
    return LIFT_VERDICT_REWARD[verdict]
