"""`train_loop.train_critic` on N Ray Train workers: gloo on CPUs, or NCCL with one GPU each.

Every worker reads the same table and takes its slice of each global batch; gradients and the
answer-token count are all-reduced, so N workers × B/N examples take exactly the step 1 worker × B
takes (tests/critic/test_critic_train_ray.py).
"""

from dataclasses import asdict, replace
from typing import Any

from ipo_ray.critic.checkpoint import read_manifest
from ipo_ray.critic.train_loop import TrainPlan, train_critic


def worker_resources(workers: int, cpus: float, gpus: float) -> tuple[dict[str, Any], str]:
    """Ray Train's ``ScalingConfig`` arguments and the process-group backend for the workers.

    Raises:
        ValueError: no CPUs, or negative GPUs.
    """
    if cpus <= 0 or gpus < 0:
        raise ValueError(f"workers need CPUs > 0 and GPUs >= 0, got {cpus} CPUs and {gpus} GPUs")
    resources = {"CPU": cpus} | ({"GPU": gpus} if gpus else {})
    scaling = {"num_workers": workers, "use_gpu": gpus > 0, "resources_per_worker": resources}
    return scaling, "nccl" if gpus > 0 else "gloo"


def _ray_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    plan = TrainPlan(**config["plan"])
    if config.get("use_gpu"):
        plan = replace(plan, device=str(ray.train.torch.get_device()))
    # Ray Train v2's report is collective: every rank calls it at each evaluation.
    train_critic(plan, ctx.get_world_rank(), ctx.get_world_size(), ray.train.report)


def fit_with_ray(
    plan: TrainPlan,
    workers: int,
    cpus_per_worker: float,
    storage_path: str,
    name: str = "critic-sft",
    max_failures: int = 0,
    gpus_per_worker: float = 0.0,
) -> dict[str, float]:
    """Runs `train_critic` on `workers` Ray Train workers on the connected Ray cluster: gloo on
    CPUs, or NCCL with each worker on the GPU Ray Train assigns it.

    Args:
        plan: The run; paths must be readable by every worker (one machine, or shared storage).
        workers: Worker count; `plan.batch_size` must divide by it.
        cpus_per_worker: Fractional CPUs per worker (2 cores shared by training, critic and
            generator deadlock otherwise: ../shared/notes/cpu-stack.md).
        storage_path: Where Ray Train keeps its run records (the critic goes to `plan.out_dir`).
        name: Ray Train run name.
        max_failures: Worker-group restarts after a failure; a restart trains again from
            `plan.init_dir` (no mid-run checkpoint), so it suits short runs such as a refresh.
        gpus_per_worker: GPUs each worker holds; > 0 trains on GPUs (the plan's device is set per
            worker), 0 on CPUs.

    Returns:
        The last evaluation's metrics (rank 0's, from the checkpoint manifest).
    """
    import ray.train
    import ray.train.torch

    if plan.batch_size % workers:
        raise ValueError(f"batch_size {plan.batch_size} must be a multiple of workers ({workers})")
    scaling, backend = worker_resources(workers, cpus_per_worker, gpus_per_worker)
    trainer = ray.train.torch.TorchTrainer(
        _ray_worker,
        train_loop_config={"plan": asdict(plan), "use_gpu": scaling["use_gpu"]},
        scaling_config=ray.train.ScalingConfig(**scaling),
        torch_config=ray.train.torch.TorchConfig(backend=backend),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
        ),
    )
    trainer.fit()
    # Rank 0's manifest is the record (Ray Train v2 keeps metrics only with reported checkpoints).
    return read_manifest(plan.out_dir)["metrics"]
