"""LiFT §3.1's coarse filter: labels whose reason contradicts their verdict.

A small, documented rule set over the reason text; each rule names one contradiction an annotator
makes by slip (a wrong key, a reason typed for another dimension or video), never a judgement call.
Words are matched whole and lower-cased; a defect word counts only when not negated (``no``,
``not``, ``without``, ``never``, ``nor``, ``n't`` within the three words before it, or ``-free``
after it), so "smooth, with no jitter or flicker" names no defect.

Pointwise:
    defect_in_good      Good, but the reason names a defect ("the square jitters").
    praise_in_bad       Normal or Bad, but the reason only praises: a praise word, no defect word,
                        no negation or contrast ("but", "however") at all.
    no_words            Normal or Bad with a reason that has no word of two letters or more ("??", "1").
Pairwise:
    other_side_better   A, but the reason says B is better (or prefers B); the same for B.
    side_better_in_tie  tie, but the reason says A or B is better.
    alike_in_preference A or B, but the reason only says the clips are alike (no "better"/"worse").
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_NEGATORS = {"no", "not", "without", "never", "nor", "hardly", "barely"}
# Stems of defect words: a word starting with one names a defect (jitters, blurred, flickering, ...).
_DEFECT_STEMS = (
    "jitter", "flicker", "blur", "noise", "noisy", "grain", "distort", "deform", "stretch", "disappear",
    "vanish", "missing", "wrong", "glitch", "stutter", "jump", "artifact", "artefact", "warp", "broken",
    "bad", "poor", "ugly", "shak", "choppy", "smear",
)  # fmt: skip
_PRAISE = {
    "smooth", "smoothly", "sharp", "clean", "correct", "correctly", "perfect", "perfectly", "good",
    "great", "fine", "intact", "steady", "natural", "matches", "right", "excellent", "clear",
}  # fmt: skip
_CONTRAST = {"but", "however", "although", "though", "except", "yet"}
_SIDE_BETTER = re.compile(
    r"\b(?:video\s+)?(a|b)\s+(?:is|looks|seems)\s+better\b|\bprefer(?:s)?\s+(?:video\s+)?(a|b)\b"
)
_ALIKE = re.compile(r"\b(?:alike|same|equal|equally|identical|no difference|similar)\b")
_COMPARATIVE = re.compile(r"\b(?:better|worse|more|less|prefer|prefers)\b")


def _words(reason: str) -> list[str]:
    return _WORD.findall(reason.lower())


def names_defect(reason: str) -> bool:
    """Whether the reason names a defect that is not negated (see the module docstring)."""
    words = _words(reason)
    for i, word in enumerate(words):
        if not word.startswith(_DEFECT_STEMS) or word.endswith("-free"):
            continue
        before = words[max(0, i - 3) : i]
        if not any(w in _NEGATORS or w.endswith("n't") for w in before):
            return True
    return False


def only_praises(reason: str) -> bool:
    """Whether the reason praises and has no defect, negation or contrast word at all."""
    words = _words(reason)
    hedged = any(w in _NEGATORS or w in _CONTRAST or w.endswith("n't") for w in words)
    return any(w in _PRAISE for w in words) and not hedged and not names_defect(reason)


def _better_sides(reason: str) -> set[str]:
    return {(m.group(1) or m.group(2)).upper() for m in _SIDE_BETTER.finditer(reason.lower())}


@dataclass(frozen=True)
class Rule:
    """One contradiction: applies to `verdicts` of `kind`; `check(reason, verdict)` is True when it fires."""

    name: str
    kind: str
    verdicts: tuple[str, ...]
    check: Callable[[str, str], bool]


RULES: tuple[Rule, ...] = (
    Rule("defect_in_good", "pointwise", ("Good",), lambda r, v: names_defect(r)),
    Rule("praise_in_bad", "pointwise", ("Normal", "Bad"), lambda r, v: only_praises(r)),
    Rule("no_words", "pointwise", ("Normal", "Bad"), lambda r, v: not any(len(w) > 1 for w in _words(r))),
    Rule("other_side_better", "pairwise", ("A", "B"), lambda r, v: bool(_better_sides(r) - {v})),
    Rule("side_better_in_tie", "pairwise", ("tie",), lambda r, v: bool(_better_sides(r))),
    Rule(
        "alike_in_preference",
        "pairwise",
        ("A", "B"),
        lambda r, v: bool(_ALIKE.search(r.lower())) and not _COMPARATIVE.search(r.lower()),
    ),
)


def contradiction(kind: str, verdict: str, reason: str) -> str | None:
    """The name of the first rule the label breaks, or None when its reason fits its verdict."""
    for rule in RULES:
        if rule.kind == kind and verdict in rule.verdicts and rule.check(reason, verdict):
            return rule.name
    return None
