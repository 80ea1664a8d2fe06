"""Critic labels for a round's candidates, asked over HTTP from the critic app.

Pointwise mode asks ``/v1/score`` once per candidate (all three dimensions, n samples each);
pairwise mode asks ``/v1/compare`` for every pair of a prompt's candidates (a round robin). Requests
run concurrently from a thread pool; the client caps how many are in flight and retries with backoff.

Three products: the labels table (one row per candidate or pair and dimension that has a majority
verdict; judgements without a majority are counted, not guessed); every judgement's verdict
distribution, majority or not, from which `preferences` computes rewards (the first-token
probabilities when the critic reads so, ``critic.vote=first_token``, else the vote counts); and
the critic-answers table, every sampled answer's text and parsed verdict, from which the SRPO loss
pairs the critic's own answers (`ipo_ray.critic.srpo`).
"""

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data import make_table
from ipo_ray.loop.preferences import round_robin
from ipo_ray.vocab import DIMENSIONS


def _distribution(judgement: Mapping[str, Any]) -> dict[str, float]:
    """A judgement's verdict distribution: its first-token probabilities where it was read so and
    found a verdict token, else its sampled vote counts (`preferences.vote_reward` takes either)."""
    probabilities = judgement.get("probabilities")
    return dict(probabilities) if probabilities else dict(judgement["votes"])


_VOTE_COLUMN = {
    "Good": col.VOTES_GOOD,
    "Normal": col.VOTES_NORMAL,
    "Bad": col.VOTES_BAD,
    "A": col.VOTES_A,
    "B": col.VOTES_B,
    "tie": col.VOTES_TIE,
}

Votes = dict[str, dict[str, float]]  # dimension → answer → vote count, or first-token probability
ScoreFn = Callable[[str, str], Mapping[str, Any]]  # (video path, prompt) → /v1/score response
CompareFn = Callable[[str, str, str], Mapping[str, Any]]  # (path A, path B, prompt) → /v1/compare response


@dataclass(frozen=True)
class Labelled:
    """A round's critic judgements.

    Attributes:
        labels: Labels table rows with a majority verdict.
        answers: Critic-answers table: the n sampled answers of every judgement, majority or not.
        point_votes: Candidate id → dimension → verdict distribution (`_distribution`; pointwise mode).
        pair_votes: (candidate A, candidate B, dimension → votes) per comparison (pairwise mode).
        no_majority: Judgements (item × dimension) without a majority.
        unparseable: Sampled answers the parser could not read.
        samples: Sampled answers in all.
    """

    labels: pa.Table
    answers: pa.Table
    point_votes: dict[str, Votes]
    pair_votes: list[tuple[str, str, Votes]]
    no_majority: int
    unparseable: int
    samples: int

    def metrics(self) -> dict[str, float]:
        return {
            "labels": self.labels.num_rows,
            "no_majority": self.no_majority,
            "unparseable_share": self.unparseable / self.samples if self.samples else 0.0,
            "mean_certainty": _mean(self.labels[col.CERTAINTY].to_pylist()),
        }


def label_pointwise(
    score: ScoreFn, candidates: pa.Table, video_root: Path, version: str, max_workers: int = 16
) -> Labelled:
    """Scores every candidate (with a ``prompt`` column; video paths relative to `video_root`)."""
    rows = candidates.select([col.CANDIDATE_ID, col.PROMPT, col.VIDEO_PATH]).to_pylist()
    paths = [str((video_root / r[col.VIDEO_PATH]).resolve()) for r in rows]
    with ThreadPoolExecutor(max_workers) as pool:
        responses = list(pool.map(score, paths, [r[col.PROMPT] for r in rows]))
    labels, votes, counts, answers = [], {}, _Counts(), []
    for row, path, response in zip(rows, paths, responses, strict=True):
        cid = row[col.CANDIDATE_ID]
        votes[cid] = {}
        for dim in DIMENSIONS:
            judgement = response["dimensions"][dim]
            votes[cid][dim] = _distribution(judgement)
            counts.add(judgement)
            answers += _answer_rows(question_id(cid, None, dim), judgement)
            if judgement["verdict"] is not None:
                labels.append(
                    _label_row("pointwise", cid, path, None, None, row[col.PROMPT], dim, judgement, version)
                )
    return Labelled(
        make_table(labels, "labels"),
        make_table(answers, "critic_answers"),
        votes,
        [],
        counts.no_majority,
        counts.unparseable,
        counts.samples,
    )


def oracle_response(judgements: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/v1/score``-shaped response from the world oracle's judgements (dimension → `Judgement`).

    One vote per question, certainty 1: the noise-free judge that `loop.judge: oracle` puts in the
    critic's place.
    """
    return {
        "dimensions": {
            dim: {
                "verdict": j.verdict,
                "reason": j.reason,
                "votes": {j.verdict: 1},
                "certainty": 1.0,
                "unparseable": 0,
                "samples": 1,
                "answers": [{"text": f"{j.verdict}. {j.reason}", "verdict": j.verdict}],
            }
            for dim, j in judgements.items()
        }
    }


def label_pairwise(
    compare: CompareFn, candidates: pa.Table, video_root: Path, version: str, max_workers: int = 16
) -> Labelled:
    """Compares every pair of each prompt's candidates (A = earlier candidate id)."""
    by_prompt: dict[str, list[dict]] = {}
    for r in candidates.select([col.CANDIDATE_ID, col.PROMPT_ID, col.PROMPT, col.VIDEO_PATH]).to_pylist():
        by_prompt.setdefault(r[col.PROMPT_ID], []).append(r)
    jobs = []
    for prompt_id in sorted(by_prompt):
        rows = {r[col.CANDIDATE_ID]: r for r in by_prompt[prompt_id]}
        for a, b in round_robin(sorted(rows)):
            jobs.append((rows[a], rows[b]))
    path = lambda r: str((video_root / r[col.VIDEO_PATH]).resolve())  # noqa: E731
    with ThreadPoolExecutor(max_workers) as pool:
        responses = list(pool.map(lambda ab: compare(path(ab[0]), path(ab[1]), ab[0][col.PROMPT]), jobs))
    labels, pair_votes, counts, answers = [], [], _Counts(), []
    for (a, b), response in zip(jobs, responses, strict=True):
        votes: Votes = {}
        for dim in DIMENSIONS:
            judgement = response["dimensions"][dim]
            votes[dim] = _distribution(judgement)
            counts.add(judgement)
            answers += _answer_rows(question_id(a[col.CANDIDATE_ID], b[col.CANDIDATE_ID], dim), judgement)
            if judgement["verdict"] is not None:
                labels.append(
                    _label_row(
                        "pairwise",
                        a[col.CANDIDATE_ID],
                        path(a),
                        b[col.CANDIDATE_ID],
                        path(b),
                        a[col.PROMPT],
                        dim,
                        judgement,
                        version,
                    )
                )
        pair_votes.append((a[col.CANDIDATE_ID], b[col.CANDIDATE_ID], votes))
    return Labelled(
        make_table(labels, "labels"),
        make_table(answers, "critic_answers"),
        {},
        pair_votes,
        counts.no_majority,
        counts.unparseable,
        counts.samples,
    )


class _Counts:
    def __init__(self) -> None:
        self.no_majority = self.unparseable = self.samples = 0

    def add(self, judgement: Mapping[str, Any]) -> None:
        self.no_majority += judgement["verdict"] is None
        self.unparseable += judgement["unparseable"]
        self.samples += judgement["samples"]


def question_id(video_id: str, video_id_b: str | None, dimension: str) -> str:
    """The id of one question (video or pair, dimension): its label row's id and its answers' key."""
    suffix = f"__{video_id_b}" if video_id_b else ""
    return f"{video_id}{suffix}__{dimension}"


def _answer_rows(label_id: str, judgement: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Critic-answers rows of one judgement's n samples (the app's ``answers``, in sample order)."""
    return [
        {
            col.ANSWER_ID: f"{label_id}__{i}",
            col.LABEL_ID: label_id,
            col.SAMPLE_INDEX: i,
            col.ANSWER_TEXT: answer["text"],
            col.ANSWER_VERDICT: answer["verdict"],
        }
        for i, answer in enumerate(judgement["answers"])
    ]


def _label_row(
    kind: str,
    video_id: str,
    video_path: str,
    video_id_b: str | None,
    video_path_b: str | None,
    prompt: str,
    dimension: str,
    judgement: Mapping[str, Any],
    version: str,
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_VOTE_COLUMN.values(), 0)
    for answer, count in judgement["votes"].items():
        row[_VOTE_COLUMN[answer]] = count
    return row | {
        col.LABEL_ID: question_id(video_id, video_id_b, dimension),
        col.KIND: kind,
        col.VIDEO_ID: video_id,
        col.VIDEO_PATH: video_path,
        col.VIDEO_ID_B: video_id_b,
        col.VIDEO_PATH_B: video_path_b,
        col.PROMPT: prompt,
        col.DIMENSION: dimension,
        col.VERDICT: judgement["verdict"],
        col.REASON: judgement["reason"],
        col.CERTAINTY: float(judgement["certainty"]),
        col.CRITIC_VERSION: version,
        col.SOURCE: "critic",
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
