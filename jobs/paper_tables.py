"""The papers' result tables in the embedded world: one main-job run per variant, then the tables.

Runs `jobs/dual_ipo.py` once per variant under ``--root`` (the default run, then KTO, a frozen critic,
reward-weighted learning, rejection sampling and the world's oracle as the judge, each differing from
the default by one setting, all with the same seed), benchmarks the large world model without
alignment, and prints IPO Tables 1, 3 and 4, Dual-IPO's SRPO ablation, LiFT's objectives and the
critic's share (critic against oracle) as Markdown (also written to
``<root>/RESULTS.md``). A variant already finished is not run again, an interrupted one is resumed,
so the command can be stopped and re-run. 5–11 minutes per variant on an idle 2-core CPU.

The rounds are evaluated on the config's benchmark (96 prompts by default: quick, but ±1–2 points of
noise). At the end the base, the large model and every variant's last generator are also scored on
``--final-prompts`` prompts (768 by default, ~70 s each, cached in the root) — the figures to compare.

    python jobs/paper_tables.py                              # every variant, 3 rounds each
    python jobs/paper_tables.py --variants dpo,kto loop.rounds=1
    python jobs/paper_tables.py --report-only                # the tables of what has finished
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ipo_ray.config import ConfigError, add_config_args, dump_yaml, load_config
from ipo_ray.loop.paper_tables import VARIANTS, results_markdown, round_scores
from ipo_ray.loop.run_dir import CONFIG_FILE, RunDir

ROOT = Path(__file__).resolve().parents[1]
LARGE_BASE_FILE = "large-base.json"
FINAL_FILE = "final-{prompts}.json"


def variant_overrides(root: str, name: str, shared: list[str]) -> list[str]:
    return [f"run.root={root}", f"run.name={name}", *shared, *VARIANTS[name]]


def run_variant(root: str, name: str, config: Path | None, shared: list[str], num_cpus: int | None) -> None:
    """Starts the variant's run, or resumes it (a finished run does nothing); exits naming a failure."""
    folder = Path(root) / name
    args = ["--num-cpus", str(num_cpus)] if num_cpus else []
    if (folder / CONFIG_FILE).is_file():
        args += ["--resume", str(folder)]
    else:
        args += (["--config", str(config)] if config else []) + variant_overrides(root, name, shared)
    print(f"== variant {name}: python jobs/dual_ipo.py {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, str(ROOT / "jobs" / "dual_ipo.py"), *args], check=False)
    if done.returncode != 0:
        sys.exit(f"variant {name} failed (exit {done.returncode}); fix the cause and run this command again")


def large_base(root: Path, dpo_config_path: Path) -> tuple[dict[str, float], dict[str, int]]:
    """The large world model's benchmark with the default run's sampling settings (cached in the root)."""
    cached = root / LARGE_BASE_FILE
    if cached.is_file():
        saved = json.loads(cached.read_text())
        return saved["scores"], saved["sizes"]
    from ipo_ray.generator.world_model import ASSETS_DIR, count_parameters, load_world_model
    from ipo_ray.loop.evaluation import benchmark_generator

    cfg = load_config(dpo_config_path)
    gen = cfg.generator
    scores = benchmark_generator(
        ASSETS_DIR / "large", gen.guidance_scale, gen.num_inference_steps, cfg.world.benchmark.num_prompts
    )
    sizes = {
        size: count_parameters(load_world_model(ASSETS_DIR / size)[0])["total"] for size in ("small", "large")
    }
    cached.write_text(json.dumps({"scores": scores, "sizes": sizes}, indent=1))
    return scores, sizes


def final_scores(
    root: Path, runs: dict[str, list], dpo_config_path: Path, prompts: int
) -> dict[str, dict[str, float]]:
    """The base, the large model and each variant's last generator on ``prompts`` benchmark prompts.

    Cached in the root by name; a variant's entry is redone when its last round changed.
    """
    from ipo_ray.generator.world_model import ASSETS_DIR
    from ipo_ray.loop.evaluation import benchmark_generator

    cached = root / FINAL_FILE.format(prompts=prompts)
    saved = json.loads(cached.read_text()) if cached.is_file() else {}
    gen = load_config(dpo_config_path).generator
    models = {"base": str(gen.model_path or ASSETS_DIR / "small"), "large": str(ASSETS_DIR / "large")}
    for name in runs:
        aligns = [r for r in RunDir(root / name).records() if r.stage == "align"]
        if aligns:
            last = max(aligns, key=lambda r: r.round)
            models[name] = str(root / name / last.outputs["generator"])
    for name, path in models.items():
        if saved.get(name, {}).get("path") != path:
            print(f"== {name}: benchmark on {prompts} prompts ({path})", file=sys.stderr, flush=True)
            scores = benchmark_generator(path, gen.guidance_scale, gen.num_inference_steps, prompts)
            saved[name] = {"path": path, "scores": scores}
            cached.write_text(json.dumps(saved, indent=1))
    return {name: saved[name]["scores"] for name in models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="runs/tables", help="folder of the variants' runs")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}"
    )
    parser.add_argument("--report-only", action="store_true", help="print the tables of finished runs only")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of each run's local Ray")
    parser.add_argument(
        "--final-prompts",
        type=int,
        default=768,
        help="benchmark prompts for the final comparison of base, large model and variants; 0 = none",
    )
    add_config_args(parser)
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.exit(2, f"{parser.prog}: unknown variant(s) {unknown}; choose from {list(VARIANTS)}\n")
    shared = list(args.overrides)
    # Every variant's config is checked before any run starts, and a run already under the root must
    # have been made with the same settings (else its numbers would not belong in these tables).
    for name in names:
        try:
            cfg = load_config(args.config, variant_overrides(args.root, name, shared))
        except ConfigError as error:
            parser.exit(2, f"{parser.prog}: variant {name}: {error}\n")
        saved = Path(args.root) / name / CONFIG_FILE
        if saved.is_file() and dump_yaml(load_config(saved)) != dump_yaml(cfg):
            parser.exit(
                2,
                f"{parser.prog}: {saved.parent} was made with other settings than these; "
                "use another --root or remove that run\n",
            )

    if not args.report_only:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        for name in names:
            run_variant(args.root, name, args.config, shared, args.num_cpus)
    runs = {}
    for name in names:
        folder = Path(args.root) / name
        if (folder / CONFIG_FILE).is_file():
            runs[name] = round_scores(RunDir(folder).records())
    large, sizes, final = (None, None, None)
    if runs.get("dpo"):
        dpo_config = Path(args.root) / "dpo" / CONFIG_FILE
        large, sizes = large_base(Path(args.root), dpo_config)
        if args.final_prompts > 0:
            final = final_scores(Path(args.root), runs, dpo_config, args.final_prompts)
    command = " ".join(["python jobs/paper_tables.py", *sys.argv[1:]])
    text = results_markdown(runs, large, sizes, command, final, args.final_prompts)
    (Path(args.root) / "RESULTS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
