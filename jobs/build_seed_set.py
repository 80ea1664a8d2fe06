"""Build the world's seed "human" preference dataset: rendered clips labelled by simulated annotators.

Writes mp4 files, a prompts table and a voted labels table (the critic's training data) under
RUN_ROOT/NAME (default runs/seed-set), and prints how often the majority vote and a single annotator
agree with the noise-free oracle, per dimension (IPO §3.1: three annotators, majority vote).

    python jobs/build_seed_set.py [--config FILE] [KEY=VALUE ...]
    python jobs/build_seed_set.py world.seed_set.num_clips=2000 run.name=seed-2k
    python jobs/build_seed_set.py world.seed_set.generated_share=0.5   # half the clips from the generator
    python jobs/build_seed_set.py --merge runs/seed-set runs/gen11 run.name=mixed   # two sets in one
"""

import argparse
import time
from pathlib import Path

from ipo_ray.config import add_config_args, parse_config
from ipo_ray.data import TableError
from ipo_ray.vocab import DIMENSIONS
from ipo_ray.world.build import seed_set
from ipo_ray.world.merge import merge_seed_sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="merge these seed-set folders (ids prefixed by folder name) instead of building one",
    )
    add_config_args(parser)
    args, cfg = parse_config(parser)
    out_dir = Path(cfg.run.root) / (cfg.run.name or "seed-set")
    if args.merge:
        try:
            labels, prompts = merge_seed_sets(args.merge, out_dir)
        except (OSError, ValueError, TableError) as e:
            parser.exit(2, f"{parser.prog}: --merge: {e}\n")
        print(f"{out_dir}: {labels} labels, {prompts} prompts from {len(args.merge)} seed sets")
        return

    start = time.perf_counter()
    summary = seed_set(cfg, out_dir)
    print(
        f"{out_dir}: {summary.clips} videos ({summary.generated} sampled from the world generator), "
        f"{summary.labels} voted labels, "
        f"{summary.no_majority} judgements without a majority (review.jsonl), "
        f"{time.perf_counter() - start:.1f} s"
    )
    print(f"{'agreement with the oracle':28s}" + "".join(f"{d:>22s}" for d in DIMENSIONS))
    for row, name in (
        ("vote", "majority of annotators"),
        ("single", "one annotator"),
        ("no_majority", "no majority"),
    ):
        print(f"{name:28s}" + "".join(f"{summary.agreement[row][d]:22.3f}" for d in DIMENSIONS))


if __name__ == "__main__":
    main()
