"""From parsed answers to response bodies: the verdict (voted or read from the first token),
certainty and LiFT rewards per dimension.

Plain functions over `ParsedAnswer`s, testable without a model. An unparseable answer is returned
marked and counted, and counts as dissent in the certainty; it never becomes a verdict.
"""

from collections.abc import Mapping, Sequence

from ipo_ray.align.losses import lift_reward
from ipo_ray.critic.parse import ParsedAnswer
from ipo_ray.critic.serve.schemas import (
    Answer,
    CompareResponse,
    Judgement,
    ScoreJudgement,
    ScoreResponse,
)
from ipo_ray.critic.templates import Kind
from ipo_ray.critic.voting import VoteResult, verdict_reward, vote
from ipo_ray.vocab import DIMENSIONS


def judgement(answers: Sequence[ParsedAnswer], kind: Kind) -> tuple[VoteResult, Judgement]:
    """The vote over one dimension's answers and its response body.

    Args:
        answers: The n parsed samples.
        kind: ``"pointwise"`` or ``"pairwise"``.
    """
    result = vote(answers, kind)
    body = Judgement(
        verdict=result.verdict,
        reason=result.reason,
        votes=result.votes,
        certainty=result.certainty,
        samples=result.num_samples,
        unparseable=result.num_unparseable,
        read=result.read,
        probabilities=result.probabilities,
        answers=[
            Answer(
                text=a.text,
                verdict=a.verdict,
                reason=a.reason,
                parsed=a.parsed,
                problem=a.problem,
                swapped=a.swapped,
            )
            for a in answers
        ],
    )
    return result, body


def score_response(version: str, answers: Mapping[str, Sequence[ParsedAnswer]]) -> ScoreResponse:
    """The body of POST /v1/score.

    Args:
        version: Critic version that answered.
        answers: Dimension → its n parsed pointwise answers.

    Returns:
        Per-dimension verdicts with LiFT rewards; the video's reward (LiFT Eq. 2) only when all three
        dimensions were asked and each has a majority verdict (no reward is made up from a tie).
    """
    dimensions: dict[str, ScoreJudgement] = {}
    verdicts: dict[str, str] = {}
    for dimension, samples in answers.items():
        result, body = judgement(samples, "pointwise")
        reward = None if result.verdict is None else verdict_reward(result.verdict)
        dimensions[dimension] = ScoreJudgement(**body.model_dump(), reward=reward)
        if result.verdict is not None:
            verdicts[dimension] = result.verdict
    reward = lift_reward(verdicts) if set(verdicts) == set(DIMENSIONS) else None
    return ScoreResponse(version=version, samples=_samples(answers), dimensions=dimensions, reward=reward)


def compare_response(
    version: str,
    answers: Mapping[str, Sequence[ParsedAnswer]],
    judged_first: tuple[Mapping[str, str | None], Mapping[str, str | None]] | None = None,
) -> CompareResponse:
    """The body of POST /v1/compare: per-dimension preference (A, B, tie or null), votes, certainty.

    Args:
        judged_first: A judge-first read's voted pointwise verdicts of A and of B per dimension
            (`judge.voted_pair_verdicts`); None for a direct read.
    """
    dimensions = {d: judgement(samples, "pairwise")[1] for d, samples in answers.items()}
    if judged_first is None:
        return CompareResponse(version=version, samples=_samples(answers), dimensions=dimensions)
    per_video = {d: {"A": judged_first[0][d], "B": judged_first[1][d]} for d in answers}
    return CompareResponse(
        version=version,
        samples=_samples(answers),
        dimensions=dimensions,
        read="judge_first",
        judged_first=per_video,
    )


def _samples(answers: Mapping[str, Sequence[ParsedAnswer]]) -> int:
    counts = {len(a) for a in answers.values()}
    if len(counts) != 1:
        raise ValueError(f"every dimension must have the same number of answers, got {sorted(counts)}")
    return counts.pop()
