"""The papers' result tables, re-measured in the embedded world from finished runs of the main job.

`jobs/paper_tables.py` runs one main-job run per *variant* — the default run and runs that differ
from it by one setting, all with the same seed, so every variant sees the same round prompts and the
same benchmark prompts and seeds — and the functions here turn their stage manifests into Markdown:

- IPO Table 3: the base, then rounds 1..R of the default (DPO) run — Total / Quality / Semantic;
- IPO Table 1: the small world model after R rounds against the larger world model without them;
- IPO Table 4: DPO against KTO;
- Dual-IPO's SRPO ablation: a frozen critic against the refreshed one;
- LiFT: reward-weighted learning and rejection sampling beside DPO and KTO;
- the critic's share: the default run against the same run judged by the oracle (a perfect critic),
  which tells a critic that limits the result from an alignment recipe that does.

Every score is the world benchmark's (percent, oracle-scored). Beside them: the critic's agreement
with the oracle on the round's candidates and the share of DPO pairs whose winner the oracle also
prefers — how good the training signal was, which is what decides whether a round can help.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ipo_ray.loop.run_dir import StageRecord

# Variant name → overrides of the default run (applied after any shared overrides).
VARIANTS: dict[str, tuple[str, ...]] = {
    "dpo": (),
    "kto": ("align.objective=kto",),
    "frozen": ("loop.srpo.trigger=never",),
    "rwl": ("align.objective=rwl",),
    "rs": ("align.objective=rs",),
    # The world's oracle labels the candidates in the critic's place: what a perfect critic would give.
    "oracle": ("loop.judge=oracle", "loop.srpo.trigger=never"),
}
OBJECTIVE_NAMES = {
    "dpo": "Diffusion-DPO",
    "kto": "Diffusion-KTO",
    "rwl": "reward-weighted (LiFT)",
    "rs": "rejection sampling (LiFT)",
}


@dataclass(frozen=True)
class RoundScores:
    """One evaluated generator of a run: round 0 is the base.

    Attributes:
        round: 0 for the base, k for the generator after round k.
        total, quality, semantic: World benchmark, percent.
        critic_agreement: Share of the round's critic verdicts equal to the oracle's (None in round 0).
        pair_accuracy: Share of the round's pairs whose winner the oracle prefers (None in round 0).
        critic_heldout: The critic's held-out pointwise agreement with the oracle after the round's
            refresh (None when the critic was not refreshed).
    """

    round: int
    total: float
    quality: float
    semantic: float
    critic_agreement: float | None = None
    pair_accuracy: float | None = None
    critic_heldout: float | None = None


def round_scores(records: Sequence[StageRecord]) -> list[RoundScores]:
    """Per evaluated round of one run, in round order; rounds without a committed evaluation are left out."""
    by_round: dict[int, dict[str, StageRecord]] = {}
    for r in records:
        by_round.setdefault(r.round, {})[r.stage] = r
    out = []
    for k in sorted(by_round):
        stages = by_round[k]
        if "evaluate" not in stages:
            continue
        bench = stages["evaluate"].metrics
        label = stages["label"].metrics if "label" in stages else {}
        prefs = stages["preferences"].metrics if "preferences" in stages else {}
        refresh = stages["refresh"].metrics if "refresh" in stages else {}
        refreshed = refresh.get("refreshed") == 1
        out.append(
            RoundScores(
                k,
                bench["bench/total"],
                bench["bench/quality"],
                bench["bench/semantic"],
                _share(label.get("agreement/mean")),
                _share(prefs.get("pair_accuracy")),
                _share(refresh.get("after/oracle/pointwise/mean")) if refreshed else None,
            )
        )
    return out


def rounds_table(scores: Sequence[RoundScores]) -> str:
    """IPO Table 3: the base and every round, with the round's signal quality beside it."""
    rows = [
        [
            "base" if s.round == 0 else f"round {s.round}",
            _f(s.total),
            _f(s.quality),
            _f(s.semantic),
            _f(s.critic_agreement),
            _f(s.pair_accuracy),
        ]
        for s in scores
    ]
    return _markdown(
        ["generator", "Total", "Quality", "Semantic", "critic = oracle %", "oracle agrees with pair %"], rows
    )


def model_size_table(
    small: Sequence[RoundScores], large_base: Mapping[str, float], sizes: Mapping[str, int]
) -> str:
    """IPO Table 1: the small model before and after its rounds against the large one without.

    Args:
        small: The default run's scores (base first, last round last).
        large_base: The large model's benchmark (``total``, ``quality``, ``semantic``).
        sizes: Parameter counts, keys ``small`` and ``large``.
    """
    base, last = small[0], small[-1]
    rows = [
        [f"small ({_params(sizes['small'])})", "none", _f(base.total), _f(base.quality), _f(base.semantic)],
        [
            f"small ({_params(sizes['small'])})",
            f"{last.round} rounds",
            _f(last.total),
            _f(last.quality),
            _f(last.semantic),
        ],
        [
            f"large ({_params(sizes['large'])})",
            "none",
            _f(large_base["total"]),
            _f(large_base["quality"]),
            _f(large_base["semantic"]),
        ],
    ]
    return _markdown(["model", "alignment", "Total", "Quality", "Semantic"], rows)


def objectives_table(runs: Mapping[str, Sequence[RoundScores]], objectives: Sequence[str]) -> str:
    """IPO Table 4 (DPO vs KTO) and LiFT's objectives: each after its last round, from the same base."""
    present = [o for o in objectives if runs.get(o)]
    if not present:
        return "(no run of these objectives has finished)"
    base = runs[present[0]][0]
    rows = [["base", "-", _f(base.total), _f(base.quality), _f(base.semantic), "-"]]
    for name in present:
        last = runs[name][-1]
        rows.append(
            [
                OBJECTIVE_NAMES.get(name, name),
                str(last.round),
                _f(last.total),
                _f(last.quality),
                _f(last.semantic),
                _signed(last.total - base.total),
            ]
        )
    return _markdown(["objective", "rounds", "Total", "Quality", "Semantic", "Δ Total"], rows)


def side_by_side_table(runs: Sequence[tuple[str, Sequence[RoundScores]]]) -> str:
    """Runs round by round, one row per (run, round): the generator and the signal it was trained on.

    Dual-IPO's SRPO ablation (critic refreshed or frozen) and the critic's share (critic or oracle as
    judge) are both this table.
    """
    rows = [
        [
            name,
            str(s.round),
            _f(s.total),
            _f(s.critic_agreement),
            _f(s.pair_accuracy),
            _f(s.critic_heldout),
        ]
        for name, scores in runs
        for s in scores[1:]
    ]
    return _markdown(
        [
            "judge",
            "round",
            "Total",
            "judge = oracle % (round)",
            "oracle agrees with pair %",
            "held-out after refresh %",
        ],
        rows,
    )


FINAL_NAMES = {
    "base": "small model, no alignment",
    "large": "large model, no alignment",
    "dpo": "Diffusion-DPO (default run)",
    "kto": "Diffusion-KTO",
    "frozen": "DPO, frozen critic",
    "rwl": "reward-weighted (LiFT)",
    "rs": "rejection sampling (LiFT)",
    "oracle": "DPO, oracle as judge",
}


def final_table(final: Mapping[str, Mapping[str, float]]) -> str:
    """Every run's last generator beside the base and the large model, on one larger benchmark.

    Args:
        final: Name (``base``, ``large`` or a variant) → benchmark scores; ``base`` must be present.
    """
    base = final["base"]["total"]
    rows = [
        [
            FINAL_NAMES.get(name, name),
            _f(scores["total"]),
            _f(scores["quality"]),
            _f(scores["semantic"]),
            "-" if name == "base" else _signed(scores["total"] - base),
        ]
        for name, scores in final.items()
    ]
    return _markdown(["generator", "Total", "Quality", "Semantic", "Δ Total vs base"], rows)


def results_markdown(
    runs: Mapping[str, Sequence[RoundScores]],
    large_base: Mapping[str, float] | None,
    sizes: Mapping[str, int] | None,
    command: str,
    final: Mapping[str, Mapping[str, float]] | None = None,
    final_prompts: int = 0,
) -> str:
    """Every table whose runs have finished, under one heading each, with the command that made them.

    ``final`` (scores on ``final_prompts`` benchmark prompts, see :func:`final_table`) comes first
    when given: the per-round tables use the runs' own, smaller benchmark.
    """
    parts = [f"Made by `{command}`.", ""]
    if final:
        parts += [
            f"**Last generators on {final_prompts} benchmark prompts** (the per-round tables below use "
            "each run's own, smaller benchmark):",
            "",
            final_table(final),
            "",
        ]
    dpo = runs.get("dpo")
    if dpo:
        parts += [
            "**IPO Table 3** — the default run (Diffusion-DPO), round by round:",
            "",
            rounds_table(dpo),
            "",
        ]
        if large_base is not None and sizes is not None:
            parts += [
                "**IPO Table 1** — the small model after IPO against the larger model without:",
                "",
                model_size_table(dpo, large_base, sizes),
                "",
            ]
    parts += ["**IPO Table 4** — DPO against KTO:", "", objectives_table(runs, ["dpo", "kto"]), ""]
    if dpo and runs.get("frozen"):
        parts += ["**Dual-IPO, SRPO ablation** — critic refreshed every round or frozen:", ""]
        parts += [
            side_by_side_table([("refreshed critic (SRPO)", dpo), ("frozen critic", runs["frozen"])]),
            "",
        ]
    if dpo and runs.get("oracle"):
        parts += [
            "**The critic's share** — the default run against the same run judged by the world's oracle "
            "(a perfect critic):",
            "",
            side_by_side_table([("critic", dpo), ("oracle", runs["oracle"])]),
            "",
        ]
    parts += [
        "**LiFT** — reward-weighted learning and rejection sampling beside DPO and KTO:",
        "",
        objectives_table(runs, ["dpo", "kto", "rwl", "rs"]),
    ]
    return "\n".join(parts) + "\n"


def _share(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else 100.0 * value


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _signed(value: float) -> str:
    return f"{value:+.1f}"


def _params(n: int) -> str:
    return f"{n / 1e6:.1f}M params"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
