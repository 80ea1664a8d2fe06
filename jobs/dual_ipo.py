"""Dual-IPO: rounds of generate → critic labels → preference data → alignment ‖ critic refresh → evaluation.

With no arguments: 3 rounds on the embedded world (the shipped small world generator and world
critic), on the Ray cluster the job was submitted to or a local one, with the critic served by Ray
Serve over HTTP and the run tracked in MLflow (``$MLFLOW_TRACKING_URI``, else sqlite under run.root).
Prints a table per round; the run directory keeps every stage's output and manifest.

    python jobs/dual_ipo.py [--config FILE] [KEY=VALUE ...]
    python jobs/dual_ipo.py --resume runs/dual-ipo-1       # continue at the first unfinished stage
    python jobs/dual_ipo.py --resume runs/dual-ipo-1 serve.port=8001   # ... its port is taken now
    ray job submit --working-dir . -- python jobs/dual_ipo.py --config cluster/configs/wan-1.3b.yaml
"""

import argparse
import logging
import sys
import time

from ipo_ray.config import add_config_args, parse_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue this run with its saved config; overrides may only move its services"
        " (serve.host, serve.port, serve.request_timeout_s)",
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    add_config_args(parser)
    # 1. The config is validated before anything starts; a resumed run keeps its own.
    args, cfg = parse_config(parser)
    # The heavy imports (Ray, vLLM, torch) come after the config is known to be valid.
    from ipo_ray.loop.driver import StageError
    from ipo_ray.loop.job import ResumeError, check_resume_overrides, run_job

    if args.resume:
        try:
            if args.config:
                raise ResumeError("--resume continues a run with its saved config; drop --config")
            check_resume_overrides(args.overrides)
        except ResumeError as error:
            parser.exit(2, f"{parser.prog}: {error}\n")
    from ipo_ray.loop.production_eval import EvaluationSetupError
    from ipo_ray.loop.real_videos import RealVideosError
    from ipo_ray.loop.report import round_table
    from ipo_ray.loop.vbench_full import VBenchSetupError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    try:
        # 2-4. Ray, the critic app, MLflow, then every round not yet committed.
        records = run_job(
            None if args.resume else cfg,
            resume=args.resume,
            num_cpus=args.num_cpus,
            resume_overrides=args.overrides if args.resume else (),
        )
    except (StageError, ResumeError, RealVideosError, EvaluationSetupError, VBenchSetupError) as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        sys.exit(1)
    print(round_table(records))
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
