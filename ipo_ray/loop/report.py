"""The per-round table the job prints (and the README's results tables are made of).

One row per evaluated generator: the benchmark's Total/Quality/Semantic (oracle-scored, percent) — or,
on cogvideox/wan, temporal flickering and the base critic's mean reward and Good share — the
critic's agreement with the oracle on the round's candidates, pairs built, the alignment's final
loss, and seconds per stage.
"""

from collections.abc import Sequence

from ipo_ray.loop.run_dir import StageRecord

_STAGE_COLUMNS = ("generate", "label", "preferences", "align", "refresh", "evaluate")


# The three evaluation columns: the world's oracle benchmark, or (cogvideox/wan) VBench's temporal
# flickering (×100, as VBench's leaderboard prints it), the critic's mean LiFT reward and Good share (%).
_WORLD_EVAL = (("Total", "bench/total", 1.0), ("Qual", "bench/quality", 1.0), ("Sem", "bench/semantic", 1.0))
_PRODUCTION_EVAL = (
    ("Flick", "eval/temporal_flickering", 100.0),
    ("Reward", "eval/critic/reward", 1.0),
    ("Good%", "eval/critic/good_share", 100.0),
)


def round_table(records: Sequence[StageRecord]) -> str:
    """Formats the table from the run's stage records (any subset; missing values print as '-')."""
    by_round: dict[int, dict[str, StageRecord]] = {}
    for r in records:
        by_round.setdefault(r.round, {})[r.stage] = r
    production = any("eval/temporal_flickering" in r.metrics for r in records if r.stage == "evaluate")
    columns = _PRODUCTION_EVAL if production else _WORLD_EVAL
    header = (
        f"{'round':>5} "
        + " ".join(f"{name:>6}" for name, _, _ in columns)
        + f" {'critic':>6} {'pairs':>5} {'loss':>7}  "
        + " ".join(f"{s[:6]:>6}" for s in _STAGE_COLUMNS)
        + f" {'wall':>6} {'overlap':>7}"
    )
    lines = [header]
    for k in sorted(by_round):
        stages = by_round[k]
        bench = stages["evaluate"].metrics if "evaluate" in stages else {}
        label = stages["label"].metrics if "label" in stages else {}
        prefs = stages["preferences"].metrics if "preferences" in stages else {}
        align = stages["align"].metrics if "align" in stages else {}
        span = list(stages.values())
        wall = max(s.end for s in span) - min(s.start for s in span)
        busy = sum(s.seconds for s in span)
        evaluation = " ".join(
            _num(_scaled(bench.get(key), scale), 6, 3 if scale == 1.0 and production else 1)
            for _, key, scale in columns
        )
        lines.append(
            f"{k:>5} {evaluation} {_num(_pct(label.get('agreement/mean')))} "
            f"{_int(prefs.get('pairs'))} {_num(align.get('final_loss'), 7, 4)}  "
            + " ".join(_num(stages[s].seconds if s in stages else None) for s in _STAGE_COLUMNS)
            + f" {_num(wall)} {_num(busy / wall if wall > 0 else None, 7, 2)}"
        )
    return "\n".join(lines)


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else scale * value


def _pct(value: float | None) -> float | None:
    return _scaled(value, 100.0)


def _num(value: float | None, width: int = 6, digits: int = 1) -> str:
    return f"{value:>{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def _int(value: float | None) -> str:
    return f"{int(value):>5d}" if isinstance(value, (int, float)) else f"{'-':>5}"
