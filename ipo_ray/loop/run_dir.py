"""A run directory: one folder per round and stage, each stage committed by a manifest.

Layout::

    <run>/config.yaml                   the config the run was started with (resume checks it)
    <run>/round-<k>/<stage>/            what the stage wrote (tables, videos, checkpoints)
    <run>/round-<k>/<stage>/STAGE.json  written last and atomically: the stage is done

A stage is done exactly when its ``STAGE.json`` exists. The manifest holds the stage's metrics and
its wall-clock span, so a resumed run reports finished stages without redoing them. Whatever a
crashed stage left behind stays in its folder: stages that can continue partial work (the
generation stage keeps committed parts, alignment a finished export) do so; the others start again
from an empty folder (`stages.START_CLEAN`).
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ipo_ray.data.atomic import write_bytes_atomic

STAGE_MANIFEST = "STAGE.json"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class StageRecord:
    """A finished stage: its metrics and when it ran (Unix seconds).

    Attributes:
        round: The round, from 1 (0 holds the run's set-up stages, e.g. the base evaluation).
        stage: The stage name.
        start: Start time.
        end: End time.
        metrics: Numbers the stage reported (JSON-serialisable).
        outputs: Names of the stage's products → paths relative to the run directory.
    """

    round: int
    stage: str
    start: float
    end: float
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.end - self.start


class RunDir:
    """The folders and stage manifests of one run.

    Args:
        path: The run directory (created if missing).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # Absolute, because stages hand paths to Ray workers, which run in another directory, and
        # paths stored relative to one stage's folder must not pick up the driver's working directory.
        self.path = Path(path).absolute()
        self.path.mkdir(parents=True, exist_ok=True)

    def stage_dir(self, round_index: int, stage: str) -> Path:
        """The folder of a stage (created)."""
        path = self.path / f"round-{round_index}" / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def is_done(self, round_index: int, stage: str) -> bool:
        return (self.path / f"round-{round_index}" / stage / STAGE_MANIFEST).is_file()

    def record(self, round_index: int, stage: str) -> StageRecord:
        """The manifest of a finished stage."""
        path = self.path / f"round-{round_index}" / stage / STAGE_MANIFEST
        return StageRecord(**json.loads(path.read_text()))

    def commit(self, record: StageRecord) -> None:
        """Marks a stage done; call only once everything it wrote is in place."""
        path = self.stage_dir(record.round, record.stage) / STAGE_MANIFEST
        write_bytes_atomic(path, json.dumps(asdict(record), indent=1, sort_keys=True).encode())

    def relative(self, path: str | os.PathLike[str]) -> str:
        """A path inside the run, as stored in manifests (so a moved run directory still resolves)."""
        return str(Path(path).resolve().relative_to(self.path.resolve()))

    def records(self) -> list[StageRecord]:
        """Every finished stage, in round order then start time."""
        found = [
            StageRecord(**json.loads(p.read_text())) for p in self.path.glob(f"round-*/*/{STAGE_MANIFEST}")
        ]
        return sorted(found, key=lambda r: (r.round, r.start))


def now() -> float:
    """Wall-clock time for stage spans (Unix seconds; comparable across processes of one machine)."""
    return time.time()
