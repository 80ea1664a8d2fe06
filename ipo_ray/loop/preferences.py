"""Preference data from critic labels: rewards per candidate, best-vs-worst pairs per prompt.

Pure functions over Arrow tables, so the rules are tested without a critic or a cluster.

Rewards (pointwise labels). A candidate's reward is LiFT's (Eq. 2: the mean over dimensions of
{Good: 0.9, Normal: 0.2, Bad: 0.05}), taken under each dimension's *vote distribution* rather than
its majority verdict: with n chain-of-thought samples, 6 Good votes of 8 and 8 of 8 are different
evidence, and the expectation keeps that difference, which breaks most of the ties that the three
majority verdicts alone would leave among K candidates. Unparseable samples carry no vote.

Rewards (pairwise labels). Each comparison of two candidates gives, per dimension, the vote share
for each side (ties split); a candidate's reward is its share of the points it competed for (a
Borda count over the round-robin of its prompt's K candidates).

Pairs (Dual-IPO, IPO §3.2): per prompt, the highest-reward candidate against the lowest. A prompt
whose best and worst tie gives no pair and is counted, never paired at random.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data import make_table
from ipo_ray.vocab import DIMENSIONS, LIFT_VERDICT_REWARD


class PreferenceError(ValueError):
    """Labels that cannot give preference data: missing dimensions, candidates without labels."""


def vote_reward(votes: Mapping[str, float]) -> float:
    """LiFT's verdict reward in expectation over a vote distribution.

    Args:
        votes: "Good" / "Normal" / "Bad" → count, or probability (a first-token read); not all 0.

    Returns:
        Σ votes(v)·reward(v) / Σ votes(v), in [0.05, 0.9].
    """
    total = sum(votes.values())
    if total <= 0:
        raise PreferenceError(f"no parsed votes in {dict(votes)}")
    return sum(LIFT_VERDICT_REWARD[v] * c for v, c in votes.items()) / total


def candidate_reward(votes: Mapping[str, Mapping[str, float]]) -> float:
    """A candidate's reward: the mean over dimensions of `vote_reward`.

    Args:
        votes: Dimension → its pointwise vote counts ("Good"/"Normal"/"Bad" → count), every
            dimension of `ipo_ray.vocab.DIMENSIONS` present.

    Raises:
        PreferenceError: A dimension is missing or has no parsed vote.
    """
    missing = set(DIMENSIONS) - set(votes)
    if missing:
        raise PreferenceError(f"no votes for {sorted(missing)}")
    return sum(vote_reward(votes[d]) for d in DIMENSIONS) / len(DIMENSIONS)


def borda_rewards(
    comparisons: Sequence[tuple[str, str, Mapping[str, Mapping[str, float]]]],
) -> dict[str, float]:
    """Candidate id → share of pairwise points won, from (id A, id B, dimension → A/B/tie votes).

    Each comparison and dimension gives A the share of votes for A plus half the tie votes, and B the
    rest, so a split vote is not rounded into a win.

    Raises:
        PreferenceError: A comparison's dimension has no parsed vote.
    """
    won: dict[str, float] = defaultdict(float)
    played: dict[str, int] = defaultdict(int)
    for a, b, per_dim in comparisons:
        for dim, votes in per_dim.items():
            total = votes.get("A", 0) + votes.get("B", 0) + votes.get("tie", 0)
            if total <= 0:
                raise PreferenceError(f"comparison {a!r} vs {b!r} has no parsed vote on {dim}")
            share_a = (votes.get("A", 0) + 0.5 * votes.get("tie", 0)) / total
            won[a] += share_a
            won[b] += 1.0 - share_a
            played[a] += 1
            played[b] += 1
    return {video_id: won[video_id] / played[video_id] for video_id in played}


def round_robin(candidate_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of a prompt's candidates once, A before B in the given order."""
    return [(a, b) for i, a in enumerate(candidate_ids) for b in candidate_ids[i + 1 :]]


@dataclass(frozen=True)
class PairStats:
    """What `best_worst_pairs` built and skipped.

    Attributes:
        prompts: Prompts seen in the candidates table.
        pairs: Pairs built (one per prompt at most).
        ties: Prompts skipped because their best and worst candidates have equal rewards.
        mean_margin: Mean winner − loser reward over the pairs (0 when there are none).
    """

    prompts: int
    pairs: int
    ties: int
    mean_margin: float


def best_worst_pairs(
    candidates: pa.Table,
    rewards: Mapping[str, float],
    round_index: int,
    path_prefix: str = "",
    min_margin: float = 1e-9,
) -> tuple[pa.Table, PairStats]:
    """Per prompt, the highest-reward candidate (winner) against the lowest (loser).

    Args:
        candidates: The round's candidates table with each row's prompt text added as a ``prompt``
            column (the candidates schema holds only the prompt id).
        rewards: Candidate id → reward, for every candidate in `candidates`.
        round_index: Written into every pair.
        path_prefix: Prefix for the latent paths, as in `samples_table`.
        min_margin: Best and worst closer than this count as a tie.

    Returns:
        A pairs table (schema ``pairs``) and its `PairStats`.

    Raises:
        PreferenceError: A candidate without a reward.
    """
    missing = [c for c in candidates[col.CANDIDATE_ID].to_pylist() if c not in rewards]
    if missing:
        raise PreferenceError(f"{len(missing)} candidates have no reward, e.g. {missing[:3]}")
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for row in candidates.to_pylist():
        by_prompt[row[col.PROMPT_ID]].append(row)
    pairs, ties = [], 0
    for prompt_id in sorted(by_prompt):
        # Sorting by (reward, id) makes the choice among equal rewards deterministic.
        ranked = sorted(
            by_prompt[prompt_id], key=lambda r: (rewards[r[col.CANDIDATE_ID]], r[col.CANDIDATE_ID])
        )
        worst, best = ranked[0], ranked[-1]
        r_best, r_worst = rewards[best[col.CANDIDATE_ID]], rewards[worst[col.CANDIDATE_ID]]
        if r_best - r_worst < min_margin:
            ties += 1
            continue
        pairs.append(
            {
                col.PAIR_ID: f"{best[col.CANDIDATE_ID]}__{worst[col.CANDIDATE_ID]}",
                col.PROMPT_ID: prompt_id,
                col.PROMPT: best[col.PROMPT],
                col.WINNER_CANDIDATE_ID: best[col.CANDIDATE_ID],
                col.LOSER_CANDIDATE_ID: worst[col.CANDIDATE_ID],
                col.WINNER_LATENT_PATH: path_prefix + best[col.LATENT_PATH],
                col.LOSER_LATENT_PATH: path_prefix + worst[col.LATENT_PATH],
                col.WINNER_REWARD: r_best,
                col.LOSER_REWARD: r_worst,
                col.ROUND: round_index,
            }
        )
    margin = sum(p[col.WINNER_REWARD] - p[col.LOSER_REWARD] for p in pairs) / len(pairs) if pairs else 0.0
    return make_table(pairs, "pairs"), PairStats(len(by_prompt), len(pairs), ties, margin)


def samples_table(
    candidates: pa.Table,
    rewards: Mapping[str, float],
    passes: Mapping[str, bool],
    desirable_reward: float,
    path_prefix: str,
    round_index: int,
) -> pa.Table:
    """The per-candidate table of the single-sample objectives (KTO, reward-weighted, rejection sampling).

    Args:
        candidates: Candidates with a ``prompt`` column (as `best_worst_pairs`).
        rewards: Candidate id → reward.
        passes: Candidate id → LiFT Eq. 4's filter (Good on every dimension by majority).
        desirable_reward: KTO's label: desirable when the reward reaches this (0.55 puts two Good
            and one Normal, 0.67, above it and one Good with two Normal, 0.43, below).
        path_prefix: Prefix that makes the generation stage's relative paths relative to the
            folder the table is written to (e.g. ``"../generate/"``).
        round_index: Written into every row.
    """
    rows = []
    for row in candidates.to_pylist():
        cid = row[col.CANDIDATE_ID]
        if cid not in rewards:
            raise PreferenceError(f"candidate {cid!r} has no reward")
        rows.append(
            {
                col.CANDIDATE_ID: cid,
                col.PROMPT_ID: row[col.PROMPT_ID],
                col.PROMPT: row[col.PROMPT],
                col.LATENT_PATH: path_prefix + row[col.LATENT_PATH],
                col.PROMPT_EMBEDS_PATH: f"{path_prefix}prompt_embeds/{row[col.PROMPT_ID]}.safetensors",
                col.REWARD: rewards[cid],
                col.DESIRABLE: rewards[cid] >= desirable_reward,
                col.PASSES: bool(passes.get(cid, False)),
                col.ROUND: round_index,
            }
        )
    return make_table(rows, "samples")
