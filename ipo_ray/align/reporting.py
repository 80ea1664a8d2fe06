"""What an alignment worker reports: per-step metrics averaged over workers, checkpoints through
Ray Train, and rank 0's copy of the metrics in MLflow."""

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import torch
import torch.distributed as dist
from torch import nn

from ipo_ray.align.zero import full_state_dict, save_zero_state

# The checkpoint file of model, optimizer (without ZeRO), RNG state and data position.
STATE_FILE = "state.pt"


@dataclass(frozen=True)
class MlflowTarget:
    """Where rank 0 logs per-step metrics: an existing run of a tracking server or store.

    Args:
        tracking_uri: e.g. ``sqlite:///runs/mlflow.db`` or ``http://127.0.0.1:5000``.
        run_id: the run to log into (the round's child run).
    """

    tracking_uri: str
    run_id: str


def report_step(
    metrics: dict[str, float],
    policy: nn.Module,
    opt: torch.optim.Optimizer,
    position: dict[str, int] | None,
    engine: Any = None,
    zero_stage: int = 0,
) -> None:
    """Reports metrics, with a checkpoint of model, optimizer, RNG and data position when given one.

    Under ZeRO every rank writes its optimizer partition and reports its directory (Ray persists all
    ranks' files into one checkpoint); rank 0 adds the model, RNG and position as without ZeRO. Under
    stage 3 every rank joins the gathering of the whole weights that rank 0 writes.
    """
    if position is None and engine is None:
        ray.train.report(metrics)
        return
    model_state = full_state_dict(policy, zero_stage) if zero_stage == 3 or position is not None else None
    # Ray persists the directory during report, so a temporary one is removed right after.
    with tempfile.TemporaryDirectory(prefix="ipo-align-ckpt-") as directory:
        if engine is not None:
            save_zero_state(engine, directory)
        if position is not None:
            state = {"model": model_state, "rng": torch.get_rng_state(), **position}
            if engine is None:
                state["optimizer"] = opt.state_dict()
            torch.save(state, Path(directory) / STATE_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def global_mean(metrics: dict[str, float], world: int) -> dict[str, float]:
    """Averages each metric over the workers (an all-reduce of one small vector per step)."""
    if world == 1:
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float64)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return dict(zip(metrics, (values / world).tolist(), strict=True))


def mlflow_logger(target: MlflowTarget | None, rank: int) -> Callable[[dict[str, float], int], None]:
    """Rank 0 logs into the given run with a client (no global active run); other ranks do nothing."""
    if target is None or rank != 0:
        return lambda metrics, step: None
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(target.tracking_uri)

    def log(metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        client.log_batch(target.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    return log
