"""The SRPO loss (Dual-IPO's critic refresh): the critic prefers its own answers that reach the vote.

Dual-IPO refreshes the critic from its voted, high-certainty pseudo-labels, and its SRPO ablation
(project page, "SRPO ablation": Critic Update / SRPO loss / PCE) trains the critic with an "SRPO
loss" besides. The page names the loss but gives no formula or hyper-parameters, so this module
makes its stated idea concrete with the DPO objective on the critic's own text: of one question's
n sampled answers, an answer whose parsed verdict equals the voted verdict is preferred over one
that does not reach it (another verdict, or unparseable), against a frozen reference — the critic
before the refresh.

Two pure pieces:

- `srpo_loss`: DPO (Rafailov et al. 2023, Eq. 7) on per-sequence summed log-probs.
- `srpo_pairs`: (chosen, rejected) answer pairs of a round, from the labels and critic-answers
  tables, for questions that pass the certainty filter and have at least one dissenting sample.

The texts are re-tokenised for scoring (`sft.encode`): the sampler's own token split may differ
from the canonical one in rare cases, which only changes which equivalent sequence is scored. Every
scored answer ends with ``<|im_end|>``, also one the sampler cut at ``critic.max_new_tokens``: both
sides of a pair are scored the same way, and the reference shares the bias.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F

from ipo_ray.critic.sft import SftExample, examples_from_labels
from ipo_ray.data import columns as col
from ipo_ray.data.atomic import write_bytes_atomic


def srpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair SRPO loss: DPO on the critic's answers (Rafailov et al. 2023, Eq. 7).

    margin = β·[(log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))];
    loss = −log σ(margin). y_c is a sampled answer that reaches the voted verdict, y_r one that does
    not, x the video(s) and question. Dual-IPO names this loss in its SRPO ablation without a formula;
    see the module docstring.

    Args:
        policy_chosen: (P,) summed answer-token log-probs of the chosen answers under the critic
            being trained.
        policy_rejected: (P,) the same for the rejected answers.
        ref_chosen: (P,) under the frozen reference (the critic before the refresh); no gradient.
        ref_rejected: (P,) the same for the rejected answers.
        beta: > 0; larger β punishes moving away from the reference more sharply (DPO's KL weight).

    Returns:
        losses: (P,) −log σ(margin), one per pair (callers sum or average).
        margins: (P,) the β-scaled log-ratio differences; > 0 where the chosen answer is favoured.

    Raises:
        ValueError: β ≤ 0 or the four inputs differ in shape.
    """
    if not beta > 0:
        raise ValueError(f"SRPO beta must be > 0, got {beta}")
    shapes = {t.shape for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1 or policy_chosen.ndim != 1:
        raise ValueError(f"SRPO inputs must be four (P,) tensors, got shapes {sorted(map(tuple, shapes))}")
    margins = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margins), margins


@dataclass(frozen=True)
class SrpoPair:
    """One preference between two sampled answers of the same question.

    Attributes:
        example: The question (its videos, caption, dimension, voted verdict; `cot` as asked).
        chosen: A sampled answer text whose parsed verdict is the voted one.
        rejected: A sampled answer text with another verdict, or unparseable.
    """

    example: SftExample
    chosen: str
    rejected: str


def srpo_pairs(
    labels: pa.Table,
    answers: pa.Table,
    certainty_threshold: float,
    max_pairs_per_question: int,
    cot: bool,
) -> list[SrpoPair]:
    """The SRPO pairs of a round: voted-verdict answers over the others, per confident question.

    A question (a labels row) contributes when its certainty reaches `certainty_threshold` (the
    pseudo-label filter) and at least one of its samples dissents; unparseable samples count as
    dissent, i.e. rejected. Identical texts are scored once per side. Pairs are taken in order
    (chosen[k mod C], rejected[k mod R]) for k < min(cap, max(C, R)), so every distinct text is
    used before any pair repeats a side, and the result is deterministic.

    Args:
        labels: Labels table (`TableKind.LABELS`) with majority verdicts.
        answers: Critic-answers table (`TableKind.CRITIC_ANSWERS`) of the same questions.
        certainty_threshold: In (0, 1]; as ``critic.certainty_threshold``.
        max_pairs_per_question: ≥ 1, the cap per question.
        cot: Whether the answers were sampled with chain-of-thought (``critic.chain_of_thought``).

    Returns:
        Pairs in labels-table order.

    Raises:
        ValueError: a bad threshold or cap, or a confident label without sampled answers.
    """
    if not 0.0 < certainty_threshold <= 1.0:
        raise ValueError(f"certainty threshold must be in (0, 1], got {certainty_threshold}")
    if max_pairs_per_question < 1:
        raise ValueError(f"max_pairs_per_question must be >= 1, got {max_pairs_per_question}")
    confident = labels.filter(pc.greater_equal(labels[col.CERTAINTY], certainty_threshold))
    if confident.num_rows == 0:
        return []
    samples: dict[str, list[tuple[int, str, str | None]]] = {}
    for row in answers.select(
        [col.LABEL_ID, col.SAMPLE_INDEX, col.ANSWER_TEXT, col.ANSWER_VERDICT]
    ).to_pylist():
        samples.setdefault(row[col.LABEL_ID], []).append(
            (row[col.SAMPLE_INDEX], row[col.ANSWER_TEXT], row[col.ANSWER_VERDICT])
        )
    pairs = []
    for example in examples_from_labels(confident):
        if example.label_id not in samples:
            raise ValueError(
                f"label {example.label_id!r} has no sampled answers in the critic-answers table; "
                "pass the answers table written by the same label stage"
            )
        ordered = sorted(samples[example.label_id])
        chosen = _distinct(text for _, text, verdict in ordered if verdict == example.verdict)
        rejected = _distinct(text for _, text, verdict in ordered if verdict != example.verdict)
        if not chosen or not rejected:
            continue
        question = replace(example, cot=cot)
        count = min(max_pairs_per_question, max(len(chosen), len(rejected)))
        pairs += [
            SrpoPair(question, chosen[k % len(chosen)], rejected[k % len(rejected)]) for k in range(count)
        ]
    return pairs


def _distinct(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))  # first occurrences, in order


def write_pairs(path: str | Path, pairs: Sequence[SrpoPair]) -> Path:
    """Writes pairs as JSON (atomically), for training workers to read with `read_pairs`."""
    rows = [asdict(p) | {"example": asdict(p.example)} for p in pairs]
    write_bytes_atomic(Path(path), json.dumps(rows).encode())
    return Path(path)


def read_pairs(path: str | Path) -> list[SrpoPair]:
    """Pairs written by `write_pairs`."""
    rows = json.loads(Path(path).read_text())
    return [
        SrpoPair(
            SftExample(**(r["example"] | {"video_paths": tuple(r["example"]["video_paths"])})),
            r["chosen"],
            r["rejected"],
        )
        for r in rows
    ]
