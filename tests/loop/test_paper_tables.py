"""The papers' tables: scores read from stage manifests, and `jobs/paper_tables.py --report-only`."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ipo_ray.config import dump_yaml, load_config
from ipo_ray.generator.world_model import ASSETS_DIR
from ipo_ray.loop.paper_tables import (
    RoundScores,
    model_size_table,
    objectives_table,
    results_markdown,
    round_scores,
)
from ipo_ray.loop.run_dir import CONFIG_FILE, RunDir, StageRecord

ROOT = Path(__file__).resolve().parents[2]


def _bench(total: float) -> dict[str, float]:
    return {"bench/total": total, "bench/quality": total + 1.0, "bench/semantic": total - 10.0}


def _fake_run(
    path: Path, totals: list[float], refreshed: bool = True, generator: Path | None = None
) -> RunDir:
    """A run's manifests: round 0's evaluation, then per round label/preferences/refresh/evaluate, and
    an align stage whose generator is ``generator`` (linked into the run) when one is given."""
    run = RunDir(path)
    t = 0.0
    for k, total in enumerate(totals):
        if k > 0 and generator is not None:
            folder = path / f"round-{k}" / "align"
            folder.mkdir(parents=True)
            (folder / "generator").symlink_to(generator)
            run.commit(StageRecord(k, "align", t, t + 1, {}, {"generator": f"round-{k}/align/generator"}))
        if k > 0:
            run.commit(StageRecord(k, "label", t, t + 1, {"agreement/mean": 0.5 + 0.1 * k}))
            run.commit(StageRecord(k, "preferences", t, t + 1, {"pairs": 3, "pair_accuracy": 0.6}))
            refresh = {"refreshed": 1, "after/oracle/pointwise/mean": 0.9} if refreshed else {"refreshed": 0}
            run.commit(StageRecord(k, "refresh", t, t + 2, refresh))
        run.commit(StageRecord(k, "evaluate", t + 2, t + 3, _bench(total)))
        t += 10
    return run


def test_round_scores_read_each_round_and_leave_out_unevaluated_ones(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "run", [70.0, 72.0, 75.0])
    run.commit(StageRecord(3, "label", 100, 101, {"agreement/mean": 0.4}))  # round 3 not evaluated yet
    scores = round_scores(run.records())
    assert [s.round for s in scores] == [0, 1, 2]
    assert scores[0] == RoundScores(0, 70.0, 71.0, 60.0)
    assert scores[2].total == 75.0 and scores[2].semantic == 65.0
    assert math.isclose(scores[2].critic_agreement, 70.0) and math.isclose(scores[1].pair_accuracy, 60.0)
    assert math.isclose(scores[1].critic_heldout, 90.0)


def test_a_frozen_critic_and_a_run_without_pairs_report_no_numbers_for_them(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "run", [70.0, 71.0], refreshed=False)
    run.commit(StageRecord(1, "preferences", 0, 1, {"pairs": 0, "pair_accuracy": float("nan")}))
    (base, first) = round_scores(run.records())
    assert first.critic_heldout is None and first.pair_accuracy is None


def test_objective_and_model_tables_compare_against_the_shared_base() -> None:
    base = RoundScores(0, 70.0, 75.0, 50.0)
    runs = {"dpo": [base, RoundScores(1, 73.5, 78.0, 52.0)], "kto": [base, RoundScores(1, 69.0, 74.0, 49.0)]}
    table = objectives_table(runs, ["dpo", "kto", "rwl"])
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["base", "Diffusion-DPO", "Diffusion-KTO"]
    assert rows[1].rstrip(" |").endswith("+3.5") and rows[2].rstrip(" |").endswith("-1.0")
    sizes = {"small": 3_900_000, "large": 9_750_000}
    size_table = model_size_table(runs["dpo"], {"total": 72.0, "quality": 76.0, "semantic": 51.0}, sizes)
    assert "3.9M params" in size_table and "9.8M params" in size_table and "| 72.0 |" in size_table
    # Tables whose runs have not finished are left out, not printed empty.
    text = results_markdown({"kto": runs["kto"]}, None, None, "cmd")
    assert "Table 3" not in text and "SRPO" not in text and "Diffusion-KTO" in text


def _tables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "jobs/paper_tables.py", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.timeout(300)
def test_report_only_prints_and_writes_the_tables_of_finished_runs(tmp_path: Path) -> None:
    root = tmp_path / "tables"
    overrides = ["world.benchmark.num_prompts=4", "generator.num_inference_steps=4"]
    for name, totals, extra in (
        ("dpo", [70.0, 71.0, 74.0], ()),
        ("frozen", [70.0, 70.5, 71.0], ("loop.srpo.trigger=never",)),
        ("oracle", [70.0, 72.5, 76.0], ("loop.judge=oracle", "loop.srpo.trigger=never")),
    ):
        # The default run's "aligned" generators are the shipped small model itself.
        generator = ASSETS_DIR / "small" if name == "dpo" else None
        run = _fake_run(root / name, totals, refreshed=name == "dpo", generator=generator)
        cfg = load_config(None, [f"run.root={root}", f"run.name={name}", *overrides, *extra])
        (run.path / CONFIG_FILE).write_text(dump_yaml(cfg))
    args = ["--root", str(root), "--variants", "dpo,frozen,oracle", "--report-only", "--final-prompts", "4"]
    done = _tables(*args, *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == (root / "RESULTS.md").read_text() + "\n"
    assert "| round 2 | 74.0 |" in done.stdout  # Table 3
    assert "| frozen critic | 2 | 71.0 |" in done.stdout  # the SRPO ablation
    assert "| oracle | 2 | 76.0 |" in done.stdout and "| critic | 2 | 74.0 |" in done.stdout  # critic's share
    # The large model was really benchmarked (4 prompts, 4 steps) and its size counted.
    large = json.loads((root / "large-base.json").read_text())
    assert 0.0 < large["scores"]["total"] <= 100.0 and large["sizes"]["large"] > large["sizes"]["small"]
    assert "IPO Table 1" in done.stdout
    # The last generators on the larger benchmark: the base, the large model and the default run's
    # last round (the base's own weights here, so the same scores, seed for seed).
    final = json.loads((root / "final-4.json").read_text())
    assert set(final) == {"base", "large", "dpo"} and final["dpo"]["path"].endswith("round-2/align/generator")
    assert final["dpo"]["scores"] == final["base"]["scores"]
    assert "**Last generators on 4 benchmark prompts**" in done.stdout
    assert "| Diffusion-DPO (default run) |" in done.stdout and "| +0.0 |" in done.stdout


def test_runs_made_with_other_settings_and_unknown_variants_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "tables"
    run = _fake_run(root / "kto", [70.0, 71.0])
    cfg = load_config(None, [f"run.root={root}", "run.name=kto", "align.objective=kto", "loop.rounds=1"])
    (run.path / CONFIG_FILE).write_text(dump_yaml(cfg))
    done = _tables("--root", str(root), "--variants", "kto", "--report-only", "loop.rounds=2")
    assert done.returncode == 2 and "other settings" in done.stderr
    assert not (root / "RESULTS.md").exists()
    done = _tables("--root", str(root), "--variants", "dpo,ppo", "--report-only")
    assert done.returncode == 2 and "ppo" in done.stderr
    done = _tables("--root", str(root), "--variants", "kto", "--report-only", "align.beta=-1")
    assert done.returncode == 2 and "align.beta" in done.stderr
