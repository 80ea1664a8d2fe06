"""Preference data from votes: LiFT rewards in expectation, Borda counts, best-vs-worst pairs, samples."""

import pyarrow as pa
import pytest

from ipo_ray.data import columns as col
from ipo_ray.loop.preferences import (
    PreferenceError,
    best_worst_pairs,
    borda_rewards,
    candidate_reward,
    round_robin,
    samples_table,
    vote_reward,
)


def test_vote_reward_is_lift_in_expectation() -> None:
    assert vote_reward({"Good": 8, "Normal": 0, "Bad": 0}) == pytest.approx(0.9)
    assert vote_reward({"Good": 6, "Normal": 0, "Bad": 2}) == pytest.approx((6 * 0.9 + 2 * 0.05) / 8)
    # Confidence matters: 6 of 8 Good is worth less than 8 of 8.
    assert vote_reward({"Good": 6, "Bad": 2}) < vote_reward({"Good": 8})
    with pytest.raises(PreferenceError, match="no parsed votes"):
        vote_reward({"Good": 0, "Normal": 0, "Bad": 0})


def test_candidate_reward_needs_every_dimension() -> None:
    good = {"Good": 4}
    votes = {"semantic_consistency": good, "motion_smoothness": {"Bad": 4}, "faithfulness": good}
    assert candidate_reward(votes) == pytest.approx((0.9 + 0.05 + 0.9) / 3)
    with pytest.raises(PreferenceError, match="faithfulness"):
        candidate_reward({"semantic_consistency": good, "motion_smoothness": good})


def test_borda_splits_ties_and_counts_shares() -> None:
    rewards = borda_rewards(
        [
            ("a", "b", {"semantic_consistency": {"A": 4}}),
            ("a", "c", {"semantic_consistency": {"tie": 4}}),
            ("b", "c", {"semantic_consistency": {"A": 1, "B": 3}}),
        ]
    )
    assert rewards == pytest.approx({"a": 0.75, "b": 0.125, "c": 0.625})
    assert round_robin(["x", "y", "z"]) == [("x", "y"), ("x", "z"), ("y", "z")]


def _candidates(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {
            col.CANDIDATE_ID: [c for c, _ in rows],
            col.PROMPT_ID: [p for _, p in rows],
            col.PROMPT: [f"text of {p}" for _, p in rows],
            col.LATENT_PATH: [f"latents/{c}.safetensors" for c, _ in rows],
        }
    )


def test_best_worst_pairs_skip_and_count_ties() -> None:
    cands = _candidates([("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("b2", "b")])
    rewards = {"a1": 0.5, "a2": 0.9, "a3": 0.1, "b1": 0.4, "b2": 0.4}
    pairs, stats = best_worst_pairs(cands, rewards, round_index=2, path_prefix="../generate/")
    assert stats.prompts == 2 and stats.pairs == 1 and stats.ties == 1
    assert stats.mean_margin == pytest.approx(0.8)
    (pair,) = pairs.to_pylist()
    assert (pair[col.WINNER_CANDIDATE_ID], pair[col.LOSER_CANDIDATE_ID]) == ("a2", "a3")
    assert pair[col.WINNER_LATENT_PATH] == "../generate/latents/a2.safetensors"
    assert pair[col.ROUND] == 2
    with pytest.raises(PreferenceError, match="no reward"):
        best_worst_pairs(cands, {"a1": 0.5}, round_index=1)


def test_samples_table_labels() -> None:
    cands = _candidates([("a1", "a"), ("a2", "a")])
    table = samples_table(cands, {"a1": 0.67, "a2": 0.43}, {"a1": True}, 0.55, "../generate/", 1)
    rows = {r[col.CANDIDATE_ID]: r for r in table.to_pylist()}
    assert rows["a1"][col.DESIRABLE] and not rows["a2"][col.DESIRABLE]
    assert rows["a1"][col.PASSES] and not rows["a2"][col.PASSES]
    assert rows["a2"][col.PROMPT_EMBEDS_PATH] == "../generate/prompt_embeds/a.safetensors"
