"""Shared fixtures of the studio tests: a small world seed set, its studio queue, a live HTTP server,
and jobs/annotate.py run in-process."""

import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
import uvicorn
from fastapi import FastAPI

from ipo_ray.annotate.app import StudioSettings, build_api
from ipo_ray.annotate.store import Store
from ipo_ray.annotate.tasks import Task, build_tasks
from ipo_ray.data import TableKind, make_table, read_table
from ipo_ray.data import columns as col
from ipo_ray.local_ray import free_port
from ipo_ray.world.annotators import Annotator, make_annotators
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import build_seed_set

NUM_CLIPS, NUM_PAIRS = 8, 4


@dataclass(frozen=True)
class WorldSet:
    """The seed builder's output for a small set, and the same items as studio tasks (builder order)."""

    folder: Path
    annotators: list[Annotator]
    settings: RenderSettings
    tasks: list[Task]


@pytest.fixture(scope="session")
def world_set(tmp_path_factory: pytest.TempPathFactory) -> WorldSet:
    folder = tmp_path_factory.mktemp("seed")
    annotators, settings = make_annotators(3, seed=5), RenderSettings()
    build_seed_set(
        folder,
        num_clips=NUM_CLIPS,
        num_pairs=NUM_PAIRS,
        defect_rate=0.6,
        strength_range=(0.2, 1.0),
        seed=11,
        annotators=annotators,
        settings=settings,
    )
    prompts = read_table(folder / "prompts.parquet", TableKind.PROMPTS)
    text = dict(zip(prompts[col.PROMPT_ID].to_pylist(), prompts[col.TEXT].to_pylist(), strict=True))
    clips = [(f"clip-{i:05d}", f"clip-{i:05d}") for i in range(NUM_CLIPS)]
    sides = [(f"pair-{i:05d}-{s}", f"pair-{i:05d}") for i in range(NUM_PAIRS) for s in "ab"]
    queue = build_tasks(candidates(clips, folder), text, root=folder, needed=3, pairs_per_prompt=0)
    queue += build_tasks(candidates(sides, folder), text, root=folder, needed=3, pointwise=False)
    return WorldSet(folder, annotators, settings, queue)


def candidates(ids: list[tuple[str, str]], folder: Path) -> pa.Table:
    """A candidates table of (candidate id, prompt id) whose videos are the seed set's files (relative)."""
    rows = [
        {
            col.CANDIDATE_ID: cid,
            col.PROMPT_ID: pid,
            col.SEED: 0,
            col.GENERATOR_VERSION: "world",
            col.LATENT_PATH: f"latents/{cid}.safetensors",
            col.VIDEO_PATH: f"videos/{cid}.mp4",
            col.ROUND: 0,
        }
        for cid, pid in ids
    ]
    assert all((folder / r[col.VIDEO_PATH]).is_file() for r in rows)
    return make_table(rows, TableKind.CANDIDATES)


def settings_for(folder: Path, tokens_file: str | None = None) -> StudioSettings:
    return StudioSettings(
        dir=str(folder), tokens_file=tokens_file, max_reason_chars=200, max_prompt_chars=80, video_min_side=64
    )


@pytest.fixture
def studio(tmp_path: Path, world_set: WorldSet) -> tuple[StudioSettings, Store]:
    """A fresh studio folder with the world set's queue."""
    store = Store(tmp_path / "studio.db")
    store.add_tasks(world_set.tasks)
    return settings_for(tmp_path), store


@contextmanager
def live_server(settings: StudioSettings, prefix: str = "/annotate") -> Iterator[str]:
    """The studio app under uvicorn in a thread, mounted at `prefix` as Serve mounts it; yields its URL."""
    outer = FastAPI()
    outer.mount(prefix, build_api(settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(outer, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the studio test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}{prefix}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


JOB = Path(__file__).resolve().parents[2] / "jobs" / "annotate.py"


def _load_job() -> object:
    spec = importlib.util.spec_from_file_location("annotate_job", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """Runs the job's main in this process (a subprocess costs seconds of imports) and returns its output."""
    main = _load_job().main

    def run(*args: str) -> str:
        monkeypatch.setattr(sys, "argv", [str(JOB), *args])
        capsys.readouterr()
        main()
        return capsys.readouterr().out

    return run
