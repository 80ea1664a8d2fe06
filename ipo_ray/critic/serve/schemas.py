"""The HTTP API's request and response bodies (pydantic): what `/openapi.json` publishes.

Requests come as JSON (videos named by path under `serve.allowed_root`) or as multipart forms (the
same fields, videos uploaded as files). Both are validated by the same models, so a bad field is a
422 whichever way it came.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ipo_ray.vocab import Dimension

# Version names go into URLs, logs and the registry; keep them plain.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_PROMPT = Field(min_length=1, max_length=2000, description="The text prompt the video was generated from.")
_VERSION = Field(None, pattern=VERSION_PATTERN, description="Critic version; null = 'default'.")
_SAMPLES = Field(None, ge=1, le=1024, description="Samples n to vote over; null = critic.samples.")
_DIMENSIONS = Field(None, min_length=1, max_length=3, description="Dimensions to judge; null = all three.")
_PATH = Field(None, min_length=1, max_length=4096, description="Video path under the allowed root.")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreRequest(_Request):
    """POST /v1/score: one video and its prompt (the video as `video_path`, or uploaded as `video`)."""

    prompt: str = _PROMPT
    video_path: str | None = _PATH
    version: str | None = _VERSION
    samples: int | None = _SAMPLES
    dimensions: list[Dimension] | None = _DIMENSIONS


class CompareRequest(_Request):
    """POST /v1/compare: videos A and B of one prompt (as paths, or uploaded as `video_a`/`video_b`)."""

    prompt: str = _PROMPT
    video_a_path: str | None = _PATH
    video_b_path: str | None = _PATH
    version: str | None = _VERSION
    samples: int | None = _SAMPLES
    dimensions: list[Dimension] | None = _DIMENSIONS
    both_orders: bool | None = Field(
        None,
        description="Also ask with B shown first and pool both orders' answers (2 × samples), so "
        "the vote cannot favour a position; null = the server's serve.compare_both_orders.",
    )


class Answer(BaseModel):
    """One of the n sampled answers, as the model wrote it."""

    text: str = Field(description="Raw model output.")
    verdict: str | None = Field(description="The verdict read from it; null when unparseable.")
    reason: str = Field(description="Text after the verdict.")
    parsed: bool = Field(description="Whether a verdict was read.")
    problem: str | None = Field(description="Why the answer is unparseable; null when it parsed.")
    swapped: bool = Field(
        False,
        description="Asked with B shown first (both_orders): the verdict is in the request's A and B, "
        "the text and reason name the videos as shown.",
    )


class Judgement(BaseModel):
    """One dimension's verdict, read from the answers' first token or voted over the n samples."""

    verdict: str | None = Field(
        description="The verdict (Good/Normal/Bad, or A/B/tie): the most likely at the answer's first "
        "token (read 'first_token'), or the samples' majority (read 'samples'); null without one."
    )
    reason: str = Field(description="Reason of the first sampled answer giving that verdict ('' if none).")
    votes: dict[str, int] = Field(
        description="The sampled answers' votes per possible answer, zeros included."
    )
    certainty: float = Field(
        description="first_token: the verdict's probability (renormalised over the verdicts, both orders "
        "averaged); samples: majority votes / samples drawn, unparseable answers counting as dissent."
    )
    read: Literal["first_token", "samples"] = Field(
        "samples",
        description="How the verdict was read (critic.vote; answers that think first are always voted).",
    )
    probabilities: dict[str, float] | None = Field(
        None, description="first_token: each verdict's probability at the answer's first token."
    )
    samples: int = Field(description="Answers drawn (n).")
    unparseable: int = Field(description="Answers the parser could not read.")
    answers: list[Answer] = Field(description="The n raw answers, unparseable ones marked.")


class ScoreJudgement(Judgement):
    """A pointwise judgement with LiFT's reward of its verdict."""

    reward: float | None = Field(description="LiFT score of the verdict (Good 0.9, Normal 0.2, Bad 0.05).")


class ScoreResponse(BaseModel):
    """Per-dimension verdicts for one video."""

    version: str
    samples: int = Field(description="n, samples per dimension.")
    dimensions: dict[str, ScoreJudgement]
    reward: float | None = Field(
        description="LiFT reward (mean over the three dimensions); null unless all three have a verdict."
    )


class CompareResponse(BaseModel):
    """Per-dimension preferences between videos A and B."""

    version: str
    samples: int = Field(description="Answers per dimension: n, or 2n when asked in both orders.")
    dimensions: dict[str, Judgement]
    read: Literal["direct", "judge_first"] = Field(
        "direct",
        description="How the version answers pairs: 'direct', or 'judge_first' (each video judged "
        "alone first, read as critic.vote says; the answers then start with those verdicts, 'Video A: Bad. "
        "Video B: Good. Answer: B. ...'; a dimension where a video has no majority is asked directly).",
    )
    judged_first: dict[str, dict[str, str | None]] | None = Field(
        None,
        description="judge_first only: per dimension, the voted pointwise verdict of each video "
        "({'A': 'Bad', 'B': 'Good'}; null where it had no majority) that its answers start from.",
    )


class VersionInfo(BaseModel):
    """A critic version as one replica sees it."""

    name: str
    path: str
    state: Literal["loading", "ready", "failed"]
    error: str | None = None


class ModelsResponse(BaseModel):
    """GET /v1/models."""

    default: str
    versions: list[VersionInfo]


class Health(BaseModel):
    """GET /healthz."""

    status: Literal["ok"]
    versions_ready: int


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: what went wrong, in words."""

    detail: str | list[dict[str, object]]
