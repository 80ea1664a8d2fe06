"""Reading a verdict out of a critic's text, or marking the text unparseable — never guessing.

The rules, in order (`parse_answer`):

1. Empty or whitespace-only text is unparseable.
2. If a line starts with ``Answer:`` (any case, markdown emphasis allowed), only the text after the
   marker counts; everything before it is the chain-of-thought, whatever verdict words it mentions.
   With several markers the last one decides, and if an earlier one states a different verdict the
   answer is unparseable (the model changed its mind or looped). When chain-of-thought was asked for
   (``cot=True``) and no marker exists, the text is unparseable: a verdict word somewhere in a
   thought is not an answer.
3. The answer must *start* with the verdict: ``Good``/``Normal``/``Bad`` (``Poor`` reads as Bad, as
   in IPO's data) or ``A``/``B``/``Tie`` (optionally ``Video A``), any case, after optional quotes,
   markdown or a ``Verdict:``/``Rating:`` label, and must end at a word boundary (``Goodness`` is
   not ``Good``; ``Goo`` from a cut-off answer is nothing).
4. A lowercase ``a``/``b`` counts only when punctuation or the end follows it, because ``a circle``
   is an article, not a preference.
5. If another verdict word follows the first one directly (``Good/Bad``, ``Good or Bad``,
   ``Good. Bad.``, ``Good, not bad``), the answer is unparseable: two verdicts, no guess. This also
   rejects a reason that itself starts with a bare verdict word (``A. B flickers``); our own answer
   format (`templates.format_answer`) never produces that.

Everything after the verdict, minus leading punctuation, is the reason.
"""

import re
from dataclasses import dataclass
from typing import Final

from ipo_ray.critic.templates import ANSWER_MARKER, Kind

_DECORATION: Final = r"[\s*_\"'`#>]*"
_LABEL: Final = r"(?:(?:verdict|rating|score|preference)\s*[:\-]\s*)?"
_POINTWISE: Final = re.compile(rf"^{_DECORATION}{_LABEL}{_DECORATION}(good|normal|bad|poor)\b", re.IGNORECASE)
_PAIRWISE: Final = re.compile(
    rf"^{_DECORATION}{_LABEL}{_DECORATION}(video\s+|option\s+)?(a|b|tie)\b", re.IGNORECASE
)
_POINTWISE_WORDS: Final = {"good": "Good", "normal": "Normal", "bad": "Bad", "poor": "Bad"}
_PAIRWISE_WORDS: Final = {"a": "A", "b": "B", "tie": "tie"}
# A second verdict right after the first: separators and at most one joining word between them.
_JOIN: Final = r"^[\W_]*(?:(?:or|and|vs\.?|versus|not|nor)\s+)?"
_SECOND_POINTWISE: Final = re.compile(rf"{_JOIN}(?:good|normal|bad|poor)\b", re.IGNORECASE)
# Case-sensitive letters: after a verdict, a lowercase "a" is far more often an article.
_SECOND_PAIRWISE: Final = re.compile(rf"{_JOIN}(?:(?:video\s+)?[AB]\b|(?i:tie)\b)")
_MARKER: Final = re.compile(r"^[ \t*_#>]*answer[ \t*_]*:", re.IGNORECASE | re.MULTILINE)
_REASON_LEAD: Final = re.compile(r"^[\s*_\"'`.,:;!?\-–—)]*")


@dataclass(frozen=True)
class ParsedAnswer:
    """One sampled critic answer.

    Attributes:
        text: The model's raw output.
        verdict: ``"Good"``/``"Normal"``/``"Bad"`` (pointwise) or ``"A"``/``"B"``/``"tie"``
            (pairwise), as in `ipo_ray.vocab`; None when the text is unparseable.
        reason: The text after the verdict ("" when unparseable or absent).
        thinking: The chain-of-thought before the ``Answer:`` marker; the whole text when
            chain-of-thought was asked for and no marker came; "" otherwise.
        problem: Why the text is unparseable; None when it parsed.
        swapped: Asked with the two videos in the other order (`judge.compare`, ``both_orders``):
            `verdict` is already mapped back to the caller's A and B, while `text` and `reason`
            name the videos as they were shown.
        first_token: The critic's verdict distribution where this answer started: each verdict of
            the kind → the probability of its first token, renormalised over the kind's verdicts
            (`judge.first_token_reads`). The same for every sample of one question (in the
            caller's A and B when `swapped`); {} when read but no verdict token was among the
            engine's most likely tokens; None when not read (`critic.vote=samples`, or a
            chain-of-thought answer whose verdict does not come first).
    """

    text: str
    verdict: str | None
    reason: str
    thinking: str
    problem: str | None
    swapped: bool = False
    first_token: dict[str, float] | None = None

    @property
    def parsed(self) -> bool:
        """Whether a verdict was read."""
        return self.verdict is not None


def parse_answer(text: str, kind: Kind, cot: bool = False) -> ParsedAnswer:
    """Extracts the verdict and reason from one critic output (rules in the module docstring).

    Args:
        text: The generated text, special tokens already removed.
        kind: ``"pointwise"`` or ``"pairwise"``.
        cot: Whether chain-of-thought was asked for; then an ``Answer:`` line is required.

    Returns:
        A `ParsedAnswer`; ``verdict`` is None with a ``problem`` when the text is unparseable.
    """
    if kind not in ("pointwise", "pairwise"):
        raise ValueError(f"kind must be 'pointwise' or 'pairwise', got {kind!r}")
    if not text.strip():
        return _unparseable(text, "", "empty answer")
    markers = list(_MARKER.finditer(text))
    if not markers:
        if cot:
            return _unparseable(text, text.strip(), f"no '{ANSWER_MARKER}' line after the chain-of-thought")
        verdict, reason, problem = _read_verdict(text, kind)
        return ParsedAnswer(text, verdict, reason, "", problem)
    thinking = text[: markers[0].start()].strip()
    ends = [m.start() for m in markers[1:]] + [len(text)]
    segments = [text[m.end() : end] for m, end in zip(markers, ends, strict=True)]
    verdict, reason, problem = _read_verdict(segments[-1], kind)
    if problem is not None:
        return _unparseable(text, thinking, f"final answer: {problem}")
    earlier = {v for v, _, _ in (_read_verdict(s, kind) for s in segments[:-1]) if v is not None}
    if earlier - {verdict}:
        return _unparseable(text, thinking, f"conflicting answers: {sorted(earlier | {verdict})}")
    return ParsedAnswer(text, verdict, reason, thinking, None)


def _read_verdict(segment: str, kind: Kind) -> tuple[str | None, str, str | None]:
    """(verdict, reason, problem) for text that should start with a verdict."""
    if not segment.strip():
        return None, "", "empty answer"
    if kind == "pointwise":
        match = _POINTWISE.match(segment)
        if match is None:
            return None, "", "does not start with Good, Normal or Bad"
        verdict, word = _POINTWISE_WORDS[match.group(1).lower()], match.group(1)
        second = _SECOND_POINTWISE
    else:
        match = _PAIRWISE.match(segment)
        if match is None:
            return None, "", "does not start with A, B or Tie"
        word = match.group(2)
        verdict = _PAIRWISE_WORDS[word.lower()]
        second = _SECOND_PAIRWISE
        if word in ("a", "b") and match.group(1) is None and not _ends_at_punctuation(segment[match.end() :]):
            return None, "", f"lowercase {word!r} followed by text reads as an article, not a preference"
    rest = segment[match.end() :]
    if second.match(rest):
        return None, "", f"more than one verdict after {word!r}"
    return verdict, _REASON_LEAD.sub("", rest).strip(), None


def _ends_at_punctuation(rest: str) -> bool:
    if not rest.strip() or rest[0] == "\n":
        return True
    return not rest[0].isspace() and not rest[0].isalnum()


def _unparseable(text: str, thinking: str, problem: str) -> ParsedAnswer:
    return ParsedAnswer(text, None, "", thinking, problem)
