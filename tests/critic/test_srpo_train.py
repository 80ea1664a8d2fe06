"""Critic training with the SRPO loss on a tiny random critic: the margin rises, metrics are logged."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ipo_ray.critic.checkpoint import read_manifest
from ipo_ray.critic.model import build_critic, load_critic
from ipo_ray.critic.sft import FrameCache
from ipo_ray.critic.srpo import SrpoPair, read_pairs
from ipo_ray.critic.srpo_train import SrpoTerm
from ipo_ray.critic.train_loop import TrainPlan, train_critic
from ipo_ray.data import TableKind, read_table
from ipo_ray.data import columns as col

NUM_FRAMES = 4
BETA = 0.5


@pytest.fixture(scope="module")
def pairs_path(seed_dir: Path, dissent_pairs: Callable[[Path, Path], Path]) -> Path:
    return dissent_pairs(seed_dir / "labels.parquet", seed_dir / "srpo_pairs.json")


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory: pytest.TempPathFactory, seed_dir: Path) -> Path:
    labels = read_table(seed_dir / "labels.parquet", TableKind.LABELS)
    corpus = sorted(set(labels[col.PROMPT].to_pylist()) | set(labels[col.REASON].to_pylist()))
    return build_critic(tmp_path_factory.mktemp("init"), corpus, seed=0)


def _margins(pairs: list[SrpoPair], init_dir: Path, trained_dir: Path) -> tuple[float, float]:
    """(mean margin, share of positive margins) of every pair: trained critic against the initial one."""
    init, processor = load_critic(init_dir)
    trained, _ = load_critic(trained_dir)
    merge = init.config.vision_config.spatial_merge_size
    term = SrpoTerm(pairs, processor, FrameCache(NUM_FRAMES), processor.tokenizer.pad_token_id, merge, BETA)
    term.compute_reference(init.eval())
    with torch.no_grad():
        _, stats = term.step(trained.eval(), np.arange(len(pairs)), len(pairs))
    return stats.margin_sum / stats.pairs, stats.positive / stats.pairs


def test_srpo_loss_raises_the_margin_and_logs_its_metrics(
    seed_dir: Path, pairs_path: Path, init_dir: Path, tmp_path: Path
) -> None:
    common = {
        "init_dir": str(init_dir),
        "labels_path": str(seed_dir / "labels.parquet"),
        "num_frames": NUM_FRAMES,
        "batch_size": 4,
        "steps": 6,
        "warmup_steps": 0,
        "eval_every": 6,
        "held_out": 0.0,
        "lr": 3e-3,
    }
    reported: list[dict[str, float]] = []
    with_srpo = TrainPlan(
        **common,  # type: ignore[arg-type]
        out_dir=str(tmp_path / "srpo"),
        srpo_pairs_path=str(pairs_path),
        srpo_beta=BETA,
        srpo_weight=1.0,
        srpo_pairs_per_step=4,
    )
    metrics = train_critic(with_srpo, report=reported.append)
    every = read_pairs(pairs_path)
    assert reported and reported[-1] == metrics
    assert metrics["critic/srpo/pairs"] == len(every)
    assert 0 < metrics["critic/srpo/loss"] < 2 and 0 <= metrics["critic/srpo/accuracy"] <= 1
    sft_only = TrainPlan(**common, out_dir=str(tmp_path / "sft"))  # type: ignore[arg-type]
    assert not any(k.startswith("critic/srpo/") for k in train_critic(sft_only))

    margin, accuracy = _margins(every, init_dir, Path(with_srpo.out_dir))
    margin_sft, _ = _margins(every, init_dir, Path(sft_only.out_dir))
    # The margin starts at 0 (policy = reference); SFT on the voted answers raises it a little as a
    # side effect, the SRPO loss raises it more.
    print(f"margin srpo {margin:.3f} (accuracy {accuracy:.2f}), sft only {margin_sft:.3f}; {metrics}")
    assert margin > 0 and accuracy > 0.5
    assert margin > margin_sft


def _job(*args: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "jobs/train_critic.py", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.timeout(240)
def test_train_critic_job_adds_the_srpo_loss_from_a_pairs_file(
    seed_dir: Path, pairs_path: Path, init_dir: Path, tmp_path: Path
) -> None:
    common = [
        f"run.root={tmp_path}",
        f"critic.train.init={init_dir}",
        f"critic.train.labels={seed_dir / 'labels.parquet'}",
        "video.num_frames=4",
        "critic.train.runner=local",
        "critic.train.workers=1",
        "critic.train.steps=2",
        "critic.train.eval_every=2",
        "critic.train.batch_size=4",
        "critic.train.held_out=0.3",
    ]
    missing = _job(*common, f"critic.train.srpo_pairs={tmp_path / 'nope.json'}")
    assert missing.returncode == 2 and "critic.train.srpo_pairs" in missing.stderr
    assert "is not a file" in missing.stderr
    done = _job(*common, "run.name=srpo", f"critic.train.srpo_pairs={pairs_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = read_manifest(tmp_path / "srpo" / "critic")
    assert manifest["training"]["srpo_pairs_path"] == str(pairs_path)
    assert manifest["metrics"]["critic/srpo/pairs"] > 0 and "critic/srpo/loss" in manifest["metrics"]
