"""The Dual-IPO job: Ray, the critic app and MLflow set up around the round loop.

`run_job` is what `jobs/dual_ipo.py` calls. Order matters for bad input: the config was validated
before this runs; the run directory and its saved config are checked next, and the configured
real-videos table of the λ2 term (unless already encoded); then Ray starts (or is joined), the
critic app comes up, and the rounds run (`rounds.run_rounds`).
"""

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ipo_ray.config import Config, dump_yaml, load_config, to_flat_dict
from ipo_ray.critic.client import CriticClient
from ipo_ray.critic.serve.launch import start as start_critic_app
from ipo_ray.critic.serve.versions import NAMESPACE, resolve_critic_path
from ipo_ray.local_ray import start_or_join_ray
from ipo_ray.loop.driver import StageError
from ipo_ray.loop.production_eval import check_evaluation
from ipo_ray.loop.prompt_expander import check_model
from ipo_ray.loop.prompts import MODEL_KEY
from ipo_ray.loop.real_videos import check_real_source
from ipo_ray.loop.rounds import run_rounds
from ipo_ray.loop.run_dir import CONFIG_FILE, RunDir, StageRecord
from ipo_ray.loop.stages import EVALUATE, REAL, ROUND_STAGES
from ipo_ray.loop.tracking import Tracker, resolve_tracking_uri

log = logging.getLogger(__name__)


class ResumeError(ValueError):
    """`--resume` was given a folder that is not a run, or with settings that would change it."""


def new_run_dir(cfg: Config) -> Path:
    """``run.root/run.name``, or ``run.root/dual-ipo-<n>`` with the first free n."""
    root = Path(cfg.run.root)
    if cfg.run.name:
        return root / cfg.run.name
    n = 1
    while (root / f"dual-ipo-{n}").exists():
        n += 1
    return root / f"dual-ipo-{n}"


# What `--resume` may change: where the run's services listen (the port a killed run used may be
# taken when it resumes), never what the run computes.
RESUME_OVERRIDES = ("serve.host", "serve.port", "serve.request_timeout_s")


def check_resume_overrides(overrides: Sequence[str]) -> None:
    """Refuses `KEY=VALUE` overrides of a resumed run other than `RESUME_OVERRIDES`.

    Raises:
        ResumeError: Naming the refused keys and the ones a resumed run accepts.
    """
    refused = [item for item in overrides if item.split("=", 1)[0].strip() not in RESUME_OVERRIDES]
    if refused:
        raise ResumeError(
            "--resume continues a run with its saved config; it may only change"
            f" {', '.join(RESUME_OVERRIDES)} (refused: {', '.join(refused)})"
        )


def open_run(cfg: Config | None, resume: str | None, overrides: Sequence[str] = ()) -> tuple[Config, RunDir]:
    """The config and run directory: a new run (config saved), or a resumed one (its saved config,
    with `overrides` of `RESUME_OVERRIDES` applied for this process; the saved file is kept).

    Raises:
        ResumeError: The resumed folder has no saved config, or an override would change the run.
    """
    if resume is not None:
        check_resume_overrides(overrides)
        saved = Path(resume) / CONFIG_FILE
        if not saved.is_file():
            raise ResumeError(f"{resume} is not a run directory of this job: {CONFIG_FILE} is missing")
        return load_config(saved, overrides), RunDir(resume)
    assert cfg is not None
    run = RunDir(new_run_dir(cfg))
    saved = run.path / CONFIG_FILE
    if saved.exists():
        raise ResumeError(f"{run.path} already holds a run; continue it with --resume {run.path}")
    saved.write_text(dump_yaml(cfg))
    return cfg, run


def is_complete(cfg: Config, run: RunDir) -> bool:
    """Whether every stage of every round is committed (then a resumed job starts nothing)."""
    real_done = run.is_done(0, REAL) or not cfg.align.uses_real
    return (
        real_done
        and run.is_done(0, EVALUATE)
        and all(run.is_done(k, stage) for k in range(1, cfg.loop.rounds + 1) for stage in ROUND_STAGES)
    )


def quiet_ray_data(quiet: bool) -> None:
    """Turns Ray Data's progress bars and "Starting execution" lines off (or on) in this driver.

    Generation runs one dataset per round; its bars would bury the job's own stage log. One line
    per dataset ("execution finished in N seconds") remains, and Ray Data's full logs stay in the
    Ray session's logs/ray-data.
    """
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not quiet
    context.print_on_execution_start = not quiet


def run_job(
    cfg: Config | None,
    resume: str | None = None,
    num_cpus: int | None = None,
    resume_overrides: Sequence[str] = (),
) -> list[StageRecord]:
    """Runs (or resumes) the whole job; returns every stage record of the run."""
    cfg, run = open_run(cfg, resume, resume_overrides)
    log.info("run directory %s", run.path)
    if is_complete(cfg, run):
        log.info("every stage of %s is committed: nothing to do", run.path)
        return run.records()
    if not run.is_done(0, REAL):
        check_real_source(cfg)  # a missing real-videos table fails here, before Ray or any training
    # An unusable evaluation prompts file (read once, in round 0) or full-VBench setup fails before Ray.
    check_evaluation(cfg, needs_prompts=not run.is_done(0, EVALUATE))
    if cfg.loop.prompt_source == "llm" and cfg.loop.prompt_llm.model is not None:
        check_model(cfg.loop.prompt_llm.model, MODEL_KEY)  # an unusable model fails before Ray starts
    start_or_join_ray(num_cpus, namespace=NAMESPACE, logging_level="WARNING")
    quiet_ray_data(not cfg.loop.data_progress)
    # The critic reads candidate videos by path: allow the run directory unless the user chose a root.
    if cfg.serve.allowed_root is None:
        cfg = cfg.model_copy(
            update={"serve": cfg.serve.model_copy(update={"allowed_root": str(run.path.resolve())})}
        )
    url = cfg.loop.critic_url or start_critic_app(cfg)
    token = os.environ.get(cfg.serve.auth_token_env) if cfg.serve.auth else None
    tracker = Tracker(
        resolve_tracking_uri(cfg.loop.tracking_uri, cfg.run.root),
        cfg.loop.experiment,
        run.path,
        run.path.name,
    )
    tracker.log_params(to_flat_dict(cfg))
    # Retries cover a replica restarting (its engine reloads in tens of seconds), then fail clearly.
    with CriticClient(url, token=token, retries=10, max_backoff_s=10.0, max_in_flight=16) as critic:
        critic.health()  # fails fast, after the client's retries, if the app does not answer
        try:
            run_rounds(cfg, run, critic, resolve_critic_path(cfg.critic.path), tracker)
        except StageError as error:
            tracker.finish(tracker.parent_id, "FAILED")
            raise StageError(f"{error}\nfix the cause, then continue with: --resume {run.path}") from error
        except BaseException:
            tracker.finish(tracker.parent_id, "FAILED")
            raise
    tracker.finish(tracker.parent_id)
    return run.records()
