"""The SRPO loss (DPO on the critic's own answers) and its pairs: known values, gradients, β, pair rules."""

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from ipo_ray.config import load_config
from ipo_ray.critic.srpo import SrpoPair, read_pairs, srpo_loss, srpo_pairs, write_pairs
from ipo_ray.data import columns as col
from ipo_ray.data import make_table

# --- the loss ---------------------------------------------------------------------------------


def _loss(pc: float, pr: float, rc: float, rr: float, beta: float) -> tuple[float, float]:
    losses, margins = srpo_loss(*(torch.tensor([v]) for v in (pc, pr, rc, rr)), beta)
    return losses.item(), margins.item()


def test_known_values() -> None:
    assert _loss(-5.0, -7.0, -5.0, -7.0, 0.1) == pytest.approx((math.log(2), 0.0))  # policy = reference
    # chosen up 1 nat, rejected down 1 nat against the reference: margin = β · 2.
    loss, margin = _loss(-4.0, -8.0, -5.0, -7.0, 0.5)
    assert margin == pytest.approx(1.0)
    assert loss == pytest.approx(math.log1p(math.exp(-1.0)))
    # Only log-ratios count: shifting both sequences' absolute log-probs changes nothing.
    assert _loss(-40.0, -80.0, -41.0, -79.0, 0.5) == pytest.approx((loss, margin))


def test_gradient_raises_chosen_and_lowers_rejected() -> None:
    policy_chosen = torch.tensor([-5.0, -3.0], requires_grad=True)
    policy_rejected = torch.tensor([-6.0, -2.0], requires_grad=True)
    losses, _ = srpo_loss(
        policy_chosen, policy_rejected, torch.tensor([-5.0, -3.0]), torch.tensor([-6.0, -2.0]), 0.2
    )
    losses.sum().backward()
    assert (policy_chosen.grad < 0).all() and (policy_rejected.grad > 0).all()  # descent: chosen up
    # At margin 0, d loss / d log π(chosen) = −β σ(0) = −β/2.
    torch.testing.assert_close(policy_chosen.grad, torch.full((2,), -0.1))


def test_beta_limits() -> None:
    # β → 0: every pair costs log 2 whatever the policy; β large: a right-signed gap costs ~0, a
    # wrong-signed one ~β·|gap| (−log σ(x) → −x).
    assert _loss(-1.0, -9.0, -5.0, -5.0, 1e-6)[0] == pytest.approx(math.log(2), abs=1e-5)
    assert _loss(-4.0, -5.0, -5.0, -5.0, 100.0)[0] < 1e-20
    assert _loss(-6.0, -5.0, -5.0, -5.0, 100.0)[0] == pytest.approx(100.0, rel=1e-6)


def test_bad_input_is_refused() -> None:
    one = torch.zeros(2)
    with pytest.raises(ValueError, match="beta must be > 0"):
        srpo_loss(one, one, one, one, 0.0)
    with pytest.raises(ValueError, match="four \\(P,\\) tensors"):
        srpo_loss(one, torch.zeros(3), one, one, 0.1)


# --- the pairs --------------------------------------------------------------------------------

_VOTES = {
    c: 0 for c in (col.VOTES_GOOD, col.VOTES_NORMAL, col.VOTES_BAD, col.VOTES_A, col.VOTES_B, col.VOTES_TIE)
}


def _label(label_id: str, verdict: str, certainty: float) -> dict[str, Any]:
    return _VOTES | {
        col.LABEL_ID: label_id,
        col.KIND: "pointwise",
        col.VIDEO_ID: label_id,
        col.VIDEO_PATH: f"/videos/{label_id}.mp4",
        col.PROMPT: "A red circle moves left.",
        col.DIMENSION: "faithfulness",
        col.VERDICT: verdict,
        col.REASON: "",
        {"Good": col.VOTES_GOOD, "Bad": col.VOTES_BAD}[verdict]: 1,
        col.CERTAINTY: certainty,
        col.SOURCE: "critic",
    }


def _answers(label_id: str, samples: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    return [
        {
            col.ANSWER_ID: f"{label_id}__{i}",
            col.LABEL_ID: label_id,
            col.SAMPLE_INDEX: i,
            col.ANSWER_TEXT: text,
            col.ANSWER_VERDICT: verdict,
        }
        for i, (text, verdict) in enumerate(samples)
    ]


GOOD, GOOD2, BAD, JUNK = ("Good. Sharp.", "Good", "Bad. Blurred.", "Goo")


@pytest.fixture
def tables() -> tuple[Any, Any]:
    labels = make_table(
        [
            _label("mixed", "Good", 0.75),  # 3 Good (2 distinct texts) vs 1 Bad
            _label("unsure", "Good", 0.5),  # below the certainty filter
            _label("unanimous", "Bad", 1.0),  # nobody dissents
            _label("junk", "Good", 0.75),  # the dissent is an unparseable sample
        ],
        "labels",
    )
    answers = make_table(
        _answers("mixed", [(GOOD, "Good"), (BAD, "Bad"), (GOOD2, "Good"), (GOOD, "Good")])
        + _answers("unsure", [(GOOD, "Good"), (BAD, "Bad")])
        + _answers("unanimous", [(BAD, "Bad"), (BAD, "Bad")])
        + _answers("junk", [(GOOD, "Good"), (JUNK, None), (GOOD, "Good"), (GOOD, "Good")]),
        "critic_answers",
    )
    return labels, answers


def test_pairs_prefer_the_voted_verdict_over_dissent_and_unparseable(tables: tuple[Any, Any]) -> None:
    pairs = srpo_pairs(*tables, certainty_threshold=0.75, max_pairs_per_question=4, cot=True)
    got = [(p.example.label_id, p.chosen, p.rejected) for p in pairs]
    # Distinct texts, each used before a side repeats; min(cap, max(C, R)) pairs per question.
    assert got == [("mixed", GOOD, BAD), ("mixed", GOOD2, BAD), ("junk", GOOD, JUNK)]
    assert all(p.example.cot and p.example.verdict == "Good" for p in pairs)
    assert (
        srpo_pairs(*tables, certainty_threshold=0.75, max_pairs_per_question=1, cot=False)[0].chosen == GOOD
    )
    assert len(srpo_pairs(*tables, certainty_threshold=0.5, max_pairs_per_question=1, cot=False)) == 3


def test_pairs_refuse_bad_input(tables: tuple[Any, Any]) -> None:
    labels, answers = tables
    with pytest.raises(ValueError, match="certainty threshold"):
        srpo_pairs(labels, answers, 0.0, 4, False)
    with pytest.raises(ValueError, match="max_pairs_per_question"):
        srpo_pairs(labels, answers, 0.75, 0, False)
    with pytest.raises(ValueError, match="'mixed' has no sampled answers"):
        srpo_pairs(labels, answers.slice(4), 0.75, 4, False)


def test_pairs_round_trip_through_json(tables: tuple[Any, Any], tmp_path: Path) -> None:
    pairs = srpo_pairs(*tables, certainty_threshold=0.75, max_pairs_per_question=4, cot=True)
    again = read_pairs(write_pairs(tmp_path / "pairs.json", pairs))
    assert again == pairs and isinstance(again[0], SrpoPair)


# --- the config -------------------------------------------------------------------------------


def test_config_refuses_an_srpo_loss_that_cannot_get_pairs() -> None:
    on = ["loop.srpo.preference_loss=true"]
    assert load_config(overrides=on).loop.srpo.preference_loss
    with pytest.raises(ValueError, match=r"loop\.srpo\.preference_loss.*critic\.samples >= 2"):
        load_config(overrides=[*on, "critic.samples=1", "critic.temperature=0"])
    with pytest.raises(ValueError, match=r"pairs_per_step.*multiple of workers \(2\)"):
        load_config(overrides=[*on, "loop.srpo.workers=2", "loop.srpo.pairs_per_step=3"])
