"""MLflow tracking of a job: a parent run per job, a child run per round, models registered per round.

The run ids are kept in the run directory (``mlflow.json``), so `--resume` logs into the same parent
and round runs instead of starting new ones. Tracking URI: the config's, else ``$MLFLOW_TRACKING_URI``,
else a sqlite store beside the runs (MLflow 3.17 refuses the plain file store without
``MLFLOW_ALLOW_FILE_STORE``; sqlite needs no server and supports the model registry).

Model versions: each round's generator and critic folders are logged as run artifacts and a
version is created from them in the registry (``<experiment>-generator`` / ``-critic``), with the
run and round as tags; the folder format is the project's own (a world checkpoint, a critic
folder), so no MLflow flavour is involved.
"""

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from ipo_ray.data.atomic import write_bytes_atomic

_IDS_FILE = "mlflow.json"


def resolve_tracking_uri(configured: str | None, runs_root: str | os.PathLike[str]) -> str:
    """The tracking URI to use (see the module docstring)."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(runs_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


class Tracker:
    """Parent and round runs of one job.

    Args:
        tracking_uri: From `resolve_tracking_uri`.
        experiment: Experiment name (created if missing).
        run_dir: The job's run directory, where the run ids are kept for resume.
        run_name: Name of the parent run.
    """

    def __init__(self, tracking_uri: str, experiment: str, run_dir: Path, run_name: str) -> None:
        self.client = MlflowClient(tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.ids_path = run_dir / _IDS_FILE
        ids = json.loads(self.ids_path.read_text()) if self.ids_path.exists() else {}
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        if "parent" not in ids:
            ids["parent"] = self.client.create_run(self.experiment_id, run_name=run_name).info.run_id
        self.ids: dict[str, str] = ids
        self._save()

    @property
    def parent_id(self) -> str:
        return self.ids["parent"]

    def round_run(self, round_index: int) -> str:
        """The child run of a round (created once, reused on resume)."""
        key = f"round-{round_index}"
        if key not in self.ids:
            run = self.client.create_run(
                self.experiment_id,
                run_name=key,
                tags={"mlflow.parentRunId": self.parent_id, "round": str(round_index)},
            )
            self.ids[key] = run.info.run_id
            self._save()
        return self.ids[key]

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters of the parent run; values already logged (a resumed run) are left as they are."""
        logged = self.client.get_run(self.parent_id).data.params
        new = [mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items() if k not in logged]
        for start in range(0, len(new), 100):  # the API takes at most 100 params per batch
            self.client.log_batch(self.parent_id, params=new[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Finite numeric metrics at a step (NaN, e.g. an accuracy over zero pairs, is left out)."""
        items = [
            mlflow.entities.Metric(_metric_key(k), float(v), 0, step)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and math.isfinite(v)
        ]
        for start in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[start : start + 1000])

    def log_artifact(
        self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def register(
        self, run_id: str, name: str, folder: Path, artifact_path: str, tags: Mapping[str, str]
    ) -> str:
        """Logs a model folder under the run and registers it as a new version of `name`; returns it."""
        self.log_artifact(run_id, folder, artifact_path)
        try:
            self.client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            self.client.create_registered_model(name)
        source = f"{self.client.get_run(run_id).info.artifact_uri}/{artifact_path}"
        version = self.client.create_model_version(name, source, run_id=run_id, tags=dict(tags))
        return version.version

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def _save(self) -> None:
        write_bytes_atomic(self.ids_path, json.dumps(self.ids, indent=1).encode())


def _metric_key(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space : and /; anything else becomes _.
    return "".join(c if c.isalnum() or c in "_-. :/" else "_" for c in key)
