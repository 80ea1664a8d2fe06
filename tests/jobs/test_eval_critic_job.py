"""`jobs/eval_critic.py`: critics scored on a world seed set against the labels and the oracle."""

import shutil
import subprocess
import sys
from pathlib import Path

from transformers import AutoTokenizer

from ipo_ray.critic.model import build_critic
from ipo_ray.critic.tokenizer import set_judges_first
from ipo_ray.world.annotators import make_annotators
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import build_seed_set

ROOT = Path(__file__).resolve().parents[2]


def _eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "jobs/eval_critic.py", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_critics_are_scored_against_labels_and_oracle_and_bad_input_is_refused(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    build_seed_set(
        seed,
        num_clips=6,
        num_pairs=2,
        defect_rate=0.5,
        strength_range=(0.2, 1.0),
        seed=0,
        annotators=make_annotators(3, seed=1),
        settings=RenderSettings(),
    )
    critic = build_critic(tmp_path / "random-critic", ["A red square moves right."])
    done = _eval("--labels", str(seed / "labels.parquet"), str(critic))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "read: first-token" in done.stdout  # a direct critic, as critic.vote=first_token serves it
    header = next(line for line in done.stdout.splitlines() if line.startswith("accuracy"))
    assert header.split()[1:] == ["random-critic:labels", "random-critic:oracle", "labels:oracle"]
    # The voted labels agree with the oracle on most questions; the numbers are shares.
    mean = next(line for line in done.stdout.splitlines() if line.startswith("pointwise/mean")).split()[1:]
    assert all(0.0 <= float(v) <= 1.0 for v in mean) and float(mean[2]) > 0.5

    # A second critic of the same name (a run continued from another keeps its version) gets its
    # own columns, named by folder, instead of overwriting the first's.
    twin = shutil.copytree(critic, tmp_path / "twin" / critic.name)
    both = _eval("--labels", str(seed / "labels.parquet"), "--read", "both-orders", str(critic), str(twin))
    assert both.returncode == 0, both.stderr[-3000:]
    assert "read: both-orders" in both.stdout
    header = next(line for line in both.stdout.splitlines() if line.startswith("accuracy")).split()[1:]
    columns = [f"{c}:{ref}" for c in (critic, twin) for ref in ("labels", "oracle")]
    assert header == [*columns, "labels:oracle"]
    assert any(line.startswith("pairwise/all") for line in both.stdout.splitlines())
    # By default each critic is read as the app serves it: a critic that declares judge-first so.
    judge_first = shutil.copytree(critic, tmp_path / "judge-first")
    tokenizer = AutoTokenizer.from_pretrained(judge_first)
    set_judges_first(tokenizer, True)
    tokenizer.save_pretrained(judge_first)
    judged = _eval("--labels", str(seed / "labels.parquet"), str(critic), str(judge_first))
    assert judged.returncode == 0, judged.stderr[-3000:]
    assert "read: random-critic first-token, judge-first judge-first" in judged.stdout
    assert any(line.startswith("pairwise/all") for line in judged.stdout.splitlines())

    not_a_critic = _eval("--labels", str(seed / "labels.parquet"), str(tmp_path))
    assert not_a_critic.returncode != 0 and "no config.json" in not_a_critic.stderr
    twice = _eval("--labels", str(seed / "labels.parquet"), str(critic), str(critic))
    assert twice.returncode != 0 and "given twice" in twice.stderr
    no_table = _eval("--labels", str(tmp_path / "missing.parquet"), str(critic))
    assert no_table.returncode != 0 and "not a committed labels table" in no_table.stderr
