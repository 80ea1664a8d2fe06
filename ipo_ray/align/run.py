"""One call for the main loop: align a generator version on a training table and export the next one.

    manifest = align_generator(cfg.align, backend="world", generator_dir=..., table_path=...,
                               out_dir=runs/x/round-1/generator, version="world-r1", ...)

Steps: (1) refuse what the loop cannot do; (2) read the committed tables (the training table, a file
or a folder of parts, and the real videos of the λ2 term when it is on) and their digests; rejection
sampling keeps the rows that pass; (3) pre-flight check of every file they name, before any worker
starts; (4) an MLflow child run if asked; (5) Ray Train fit, each micro-batch drawing real videos
beside its preference rows; (6) the last checkpoint loaded on the driver and exported in the
backend's own format; (7) the manifest written last, as the commit point: calling again with the
same out_dir and tables returns it without training.

Ray must be initialised by the caller.
"""

import hashlib
import json
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ipo_ray.align.backends import builders, export_generator, latent_shape, load_transformer
from ipo_ray.align.preflight import (
    check_real_table,
    check_training_table,
    embeds_shape,
    pairs_text_dir,
    tensor_shape,
)
from ipo_ray.align.real import RealClips
from ipo_ray.align.reporting import MlflowTarget
from ipo_ray.align.step import StepConfig
from ipo_ray.align.train_loop import TrainLoopConfig, fit, load_checkpoint_into
from ipo_ray.config.align import AlignConfig
from ipo_ray.data import columns as col
from ipo_ray.data.atomic import write_bytes_atomic
from ipo_ray.data.tables import committed_parts, read_manifest, read_parts, read_table

MANIFEST_FILE = "alignment_manifest.json"
MANIFEST_FORMAT = "ipo-ray-generator-version"


class AlignmentError(RuntimeError):
    """Alignment could not run or failed; the message says why."""


def read_alignment_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of an exported version, or None when ``out_dir`` holds no committed one."""
    path = Path(out_dir) / MANIFEST_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _read_training_table(path: Path, kind: str) -> tuple[pa.Table, str]:
    """(table, sha256 digest): a committed table file, or a folder of committed parts."""
    if path.is_dir():
        parts = committed_parts(path)
        digest = hashlib.sha256("".join(read_manifest(p).sha256 for p in parts).encode()).hexdigest()
        return read_parts(path, kind), digest
    return read_table(path, kind), read_manifest(path).sha256


def _loop_config(
    cfg: AlignConfig, text_embeds_dir: str, resume_from: str | None, real_batch_size: int
) -> TrainLoopConfig:
    step = StepConfig(
        objective=cfg.objective,
        beta=cfg.beta,
        lambda_preferred=cfg.lambda_preferred,
        lambda_real=cfg.lambda_real,
        kto_desirable_weight=cfg.kto_desirable_weight,
        kto_undesirable_weight=cfg.kto_undesirable_weight,
    )
    return TrainLoopConfig(
        step=step,
        text_embeds_dir=text_embeds_dir,
        max_steps=cfg.max_steps,
        reference=cfg.reference,
        lr=cfg.lr,
        micro_batch=cfg.micro_batch,
        grad_accum=cfg.grad_accum,
        checkpoint_every=cfg.checkpoint_every,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        resume_from=resume_from,
        mixed_precision=cfg.mixed_precision,
        zero_stage=cfg.zero_stage,
        real_batch_size=real_batch_size,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )


def _mlflow_run(
    tracking_uri: str | None, run_id: str | None, parent_run_id: str | None, version: str, cfg: AlignConfig
) -> MlflowTarget | None:
    """The run rank 0 logs into: ``run_id`` as given, or a new child of ``parent_run_id``."""
    if tracking_uri is None:
        if run_id or parent_run_id:
            raise AlignmentError("an MLflow run id was given without a tracking_uri")
        return None
    if run_id is None and parent_run_id is None:
        raise AlignmentError("MLflow tracking needs run_id (log into it) or parent_run_id (a child run)")
    if run_id is None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        parent = client.get_run(parent_run_id)
        # An earlier attempt whose driver was killed left its child RUNNING; it will never finish.
        for orphan in client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and "
            f"attributes.run_name = 'align-{version}' and attributes.status = 'RUNNING'",
        ):
            client.set_terminated(orphan.info.run_id, "KILLED")
        child = client.create_run(
            parent.info.experiment_id,
            run_name=f"align-{version}",
            tags={"mlflow.parentRunId": parent_run_id, "ipo_ray.stage": "align"},
        )
        run_id = child.info.run_id
        client.log_batch(run_id, params=[_param(f"align.{k}", v) for k, v in cfg.model_dump().items()])
    return MlflowTarget(tracking_uri, run_id)


def _param(key: str, value: Any):
    from mlflow.entities import Param

    return Param(key, str(value))


def align_generator(
    cfg: AlignConfig,
    *,
    backend: str,
    generator_dir: str | os.PathLike[str],
    table_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    version: str,
    parent_version: str | None = None,
    base_generator_dir: str | os.PathLike[str] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    text_embeds_dir: str | os.PathLike[str] | None = None,
    storage_path: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
    mlflow_run_id: str | None = None,
    mlflow_parent_run_id: str | None = None,
    resume_from: str | None = None,
    real_table_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Trains ``generator_dir`` on a committed table with Ray Train and exports the next version.

    Args:
        cfg: the ``align`` config section.
        backend: ``world``, ``cogvideox`` or ``wan`` (the generator section's backend).
        generator_dir: the version to start from (the previous round's export, or the base model).
        table_path: a committed ``pairs`` table (objective dpo) or ``samples`` table (kto, rwl, rs):
            a Parquet file with its manifest, or a folder of committed parts.
        out_dir: the new version's model folder (same format as ``generator_dir``).
        version: the new version's name. parent_version: the name of ``generator_dir``'s version.
        base_generator_dir: the round-0 model, the reference under ``reference_mode: base``.
        data_root: relative paths in the table are relative to it; default the table's folder.
        text_embeds_dir: pairs only: prompt embeddings folder; default ``data_root/prompt_embeds``.
        storage_path: where Ray Train keeps checkpoints; default ``<out_dir>.ray`` beside out_dir.
        tracking_uri: MLflow tracking URI; with ``mlflow_run_id`` (log into it) or
            ``mlflow_parent_run_id`` (a child run ``align-<version>`` is created, and ended FINISHED
            or FAILED; one an earlier, killed attempt left RUNNING is ended KILLED), per-step
            metrics are logged from rank 0.
        resume_from: a Ray Train checkpoint folder of an interrupted call to continue from.
        real_table_path: an encoded, committed ``real_videos`` table (``encode_real_videos``; paths
            relative to its folder) for the λ2 term; each micro-batch draws ``cfg.real_batch_size``
            of its clips. None, λ2 = 0 or real_batch_size = 0: no real videos, at no cost.

    Returns:
        The manifest (also written to ``out_dir/alignment_manifest.json``): format, version,
        parent_version, backend, objective, steps, data (path, kind, rows, sha256), real (the same of
        the real-videos table, or None), metrics (the last
        step's, averaged over workers), config, reference_mode, mlflow_run_id, created_utc, seconds.

    Raises:
        AlignmentError: an unsupported setting, no rows to train on, or a failed fit.
        PreflightError: a missing, unreadable or misshapen latent or embedding file (before Ray Train).
    """
    # 1. Settings that cannot work together fail here, before any work.
    kind = "pairs" if cfg.objective == "dpo" else "samples"
    generator_dir, table_path, out_dir = Path(generator_dir), Path(table_path), Path(out_dir)
    separate_base = (
        base_generator_dir is not None and Path(base_generator_dir).resolve() != generator_dir.resolve()
    )
    if cfg.reference_mode == "base" and cfg.reference == "lora" and separate_base:
        raise AlignmentError(
            "reference_mode 'base' with reference 'lora': exported versions have their adapters merged, so "
            "switching adapters off gives the previous round, not the base; use reference 'frozen_copy'"
        )
    if cfg.reference_mode == "base" and base_generator_dir is None:
        raise AlignmentError("reference_mode 'base' needs base_generator_dir (the round-0 model)")

    # 2. The committed tables and their digests; a version already exported from them is returned as is.
    table, digest = _read_training_table(table_path, kind)
    use_real = cfg.uses_real and real_table_path is not None
    real_table, real_data = None, None
    if use_real:
        real_table_path = Path(real_table_path)
        real_table, real_digest = _read_training_table(real_table_path, "real_videos")
        real_data = {"path": str(real_table_path), "rows": real_table.num_rows, "sha256": real_digest}
    done = read_alignment_manifest(out_dir)
    if (
        done is not None
        and done["data"]["sha256"] == digest
        and done["objective"] == cfg.objective
        and done.get("real") == real_data
    ):
        return done
    if cfg.objective == "rs":  # LiFT Eq. 4: only samples Good on every dimension are trained on
        keep = pc.and_(table[col.PASSES], pc.greater_equal(table[col.REWARD], cfg.rs_threshold))
        table = table.filter(keep)
    needed = cfg.micro_batch * cfg.workers
    if table.num_rows < needed:
        raise AlignmentError(
            f"{table.num_rows} {kind} rows to train on (after filtering), fewer than micro_batch × workers = "
            f"{needed}; every worker needs a full micro-batch"
        )

    # 3. Every file checked before any worker starts; workers get absolute paths.
    root = (
        Path(data_root) if data_root is not None else table_path if table_path.is_dir() else table_path.parent
    )
    table = check_training_table(
        table,
        kind,
        root=root,
        text_embeds_dir=text_embeds_dir,
        latent_shape=latent_shape(backend, generator_dir),
    )
    text_dir = str(pairs_text_dir(root, text_embeds_dir)) if kind == "pairs" else ""
    real = None
    if use_real:
        first_latent = table[col.LATENT_PATH if kind == "samples" else col.WINNER_LATENT_PATH][0].as_py()
        real_table = check_real_table(
            real_table,
            root=real_table_path.parent,
            latent_shape=tensor_shape(Path(first_latent)),
            text_shape=embeds_shape(table, kind, text_dir),
            batch_size=cfg.real_batch_size,
        )
        real = RealClips.from_table(real_table)

    # 4-5. Tracking, then the fit.
    mlflow = _mlflow_run(tracking_uri, mlflow_run_id, mlflow_parent_run_id, version, cfg)
    lora_rank = cfg.lora_rank if cfg.reference == "lora" else None
    build_policy, build_denoiser = builders(backend, generator_dir, lora_rank)
    build_reference = (
        partial(load_transformer, backend, str(base_generator_dir))
        if cfg.reference_mode == "base" and separate_base
        else None
    )
    started = time.time()
    result = fit(
        _loop_config(cfg, text_dir, resume_from, cfg.real_batch_size if real is not None else 0),
        build_policy,
        build_denoiser,
        table,
        num_workers=cfg.workers,
        cpus_per_worker=cfg.cpus_per_worker,
        # Ray Train's storage must be an absolute path (a relative one is read as a URI).
        storage_path=str(Path(storage_path or out_dir.with_name(out_dir.name + ".ray")).resolve()),
        name=version,
        max_failures=cfg.max_failures,
        build_reference=build_reference,
        mlflow=mlflow,
        use_gpu=cfg.use_gpu,
        real=real,
    )
    if result.error is not None or result.checkpoint is None:
        _end_child(mlflow, mlflow_run_id, "FAILED")
        raise AlignmentError(f"alignment of {version} failed: {result.error}") from result.error

    # 6. The trained weights, exported in the backend's format.
    policy = build_policy()
    position = load_checkpoint_into(policy, result.checkpoint)
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
    alignment = {
        "version": version,
        "parent_version": parent_version,
        "objective": cfg.objective,
        "steps": position["step"],
        "data_sha256": digest,
    }
    export_generator(backend, policy, generator_dir, out_dir, alignment)

    # 7. The manifest, last: its presence means the version is complete.
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": version,
        "parent_version": parent_version,
        "backend": backend,
        "parent_dir": str(generator_dir),
        "objective": cfg.objective,
        "steps": position["step"],
        "data": {"path": str(table_path), "kind": kind, "rows": table.num_rows, "sha256": digest},
        "real": real_data,
        "metrics": metrics,
        "config": cfg.model_dump(),
        "reference_mode": cfg.reference_mode,
        "mlflow_run_id": mlflow.run_id if mlflow else None,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - started, 1),
    }
    write_bytes_atomic(out_dir / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    _end_child(mlflow, mlflow_run_id, "FINISHED")
    return manifest


def _end_child(mlflow: MlflowTarget | None, given_run_id: str | None, status: str) -> None:
    """Ends the child run this call created (a run given by the caller is the caller's to end)."""
    if mlflow is not None and given_run_id is None:
        from mlflow.tracking import MlflowClient

        MlflowClient(mlflow.tracking_uri).set_terminated(mlflow.run_id, status)
