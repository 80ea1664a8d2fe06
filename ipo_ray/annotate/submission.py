"""Checking one submitted annotation before anything is stored.

Every dimension needs an answer of the task's kind; every answer other than Good (pointwise) or tie
(pairwise) needs a reason (LiFT §3.1: the reason is what the critic learns to give). Reasons longer
than the limit are refused, never cut. Problems come back as one 422 listing each field in
pydantic's error format (``loc`` ends with the dimension), so the page can point at the field.
"""

from ipo_ray.critic.serve.inputs import InputError
from ipo_ray.data.schemas import ANSWERS, LabelKind
from ipo_ray.vocab import DIMENSIONS

# Answers that need no reason: the default judgement of each kind.
NO_REASON_NEEDED = {"pointwise": "Good", "pairwise": "tie"}


def check_submission(
    kind: LabelKind, answers: dict[str, str], reasons: dict[str, str], max_reason_chars: int
) -> dict[str, tuple[str, str]]:
    """The annotation as {dimension: (answer, reason)}, or a 422 naming every bad field.

    Args:
        kind: The task's kind.
        answers: {dimension: answer} as sent.
        reasons: {dimension: reason} as sent (may omit dimensions that need none).
        max_reason_chars: Longest reason accepted.

    Raises:
        InputError: 422 with a list of {loc, msg, type}; nothing is stored.
    """
    problems: list[dict[str, object]] = []

    def problem(field: str, dim: str, msg: str, type_: str) -> None:
        problems.append({"loc": ["body", field, dim], "msg": msg, "type": type_})

    allowed = ANSWERS[kind]
    for dim in sorted(set(answers) - set(DIMENSIONS)):
        problem("answers", dim, f"unknown dimension; the dimensions are {list(DIMENSIONS)}", "unknown")
    for dim in sorted(set(reasons) - set(DIMENSIONS)):
        problem("reasons", dim, f"unknown dimension; the dimensions are {list(DIMENSIONS)}", "unknown")
    out = {}
    for dim in DIMENSIONS:
        answer, reason = answers.get(dim), reasons.get(dim, "").strip()
        if answer is None:
            problem("answers", dim, f"choose one of {list(allowed)}", "missing_answer")
        elif answer not in allowed:
            problem(
                "answers", dim, f"{answer!r} is not a {kind} answer; choose one of {list(allowed)}", "bad"
            )
        elif answer != NO_REASON_NEEDED[kind] and not reason:
            problem("reasons", dim, f"a reason is required for {answer!r}", "missing_reason")
        elif len(reason) > max_reason_chars:
            problem("reasons", dim, f"{len(reason)} characters, at most {max_reason_chars}", "too_long")
        else:
            out[dim] = (answer, reason)
    if problems:
        raise InputError(422, problems)
    return out
