"""`--resume` keeps a run's saved config: it may move the run's services, never change what it computes."""

import subprocess
import sys
from pathlib import Path

import pytest

from ipo_ray.config import dump_yaml, load_config
from ipo_ray.loop.job import ResumeError, open_run
from ipo_ray.loop.run_dir import CONFIG_FILE


def _saved_run(tmp_path: Path) -> Path:
    cfg = load_config(None, [f"run.root={tmp_path}", "run.name=r", "serve.port=8000"])
    _, run = open_run(cfg, None)
    return run.path


def test_a_resumed_run_may_take_another_port_and_keeps_its_saved_config(tmp_path: Path) -> None:
    path = _saved_run(tmp_path)
    saved = (path / CONFIG_FILE).read_text()
    cfg, run = open_run(None, str(path), ["serve.port=8123", "serve.request_timeout_s=30"])
    assert run.path == path
    assert (cfg.serve.port, cfg.serve.request_timeout_s) == (8123, 30)
    assert dump_yaml(cfg.model_copy(update={"serve": load_config(path / CONFIG_FILE).serve})) == saved
    assert (path / CONFIG_FILE).read_text() == saved  # the next resume starts from the same config


def test_a_resumed_run_refuses_overrides_that_change_the_run(tmp_path: Path) -> None:
    path = _saved_run(tmp_path)
    with pytest.raises(ResumeError, match=r"may only change serve.host.*refused: align.objective=kto"):
        open_run(None, str(path), ["serve.port=8123", "align.objective=kto"])


def test_the_job_refuses_them_before_anything_starts(tmp_path: Path) -> None:
    path = _saved_run(tmp_path)
    before = sorted(p.name for p in path.iterdir())
    job = Path(__file__).resolve().parents[2] / "jobs" / "dual_ipo.py"
    done = subprocess.run(
        [sys.executable, str(job), "--resume", str(path), "loop.rounds=5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "refused: loop.rounds=5" in done.stderr
    assert sorted(p.name for p in path.iterdir()) == before
