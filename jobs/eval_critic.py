"""Score critic folders on a labels table: greedy answers against the labels and, for world data, the oracle.

Every critic answers every labelled question once (greedy, through transformers; or, with
``--read first-token`` / ``--read both-orders``, its most likely first verdict token, the latter
averaging each pairwise question over both video orders; or, with ``--read judge-first``, each
pairwise question after the critic's own pointwise verdicts on both videos, both orders averaged:
the read-out of critics trained with ``critic.train.judge_first``); the table has one
column per critic and reference. World labels (a seed set written by `jobs/build_seed_set.py`) come
with a prompts table of specs beside them, and the noise-free oracle is scored too — e.g. a critic
trained on renders, on a seed set of generated clips (`world.seed_set.generated_share=1`).

    python jobs/eval_critic.py --labels runs/heldout-gen/labels.parquet \
        ipo_ray/assets/world_critic runs/world-critic-v3/critic
"""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from ipo_ray.config import load_config
from ipo_ray.critic.adapters import is_adapter
from ipo_ray.critic.augment import DESCRIBE_FIRST_TOKENS
from ipo_ray.critic.checkpoint import MANIFEST
from ipo_ray.critic.evaluate import (
    accuracy,
    both_orders_verdicts,
    first_token_verdicts,
    format_table,
    greedy_verdicts,
    oracle_verdicts,
)
from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import SamplingConfig
from ipo_ray.critic.judge_first import judge_first_verdicts
from ipo_ray.critic.model import load_critic
from ipo_ray.critic.sft import FrameCache, examples_from_labels
from ipo_ray.data import TableKind, is_committed, read_table
from ipo_ray.world.build import render_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("critics", nargs="+", type=Path, help="critic folders")
    parser.add_argument("--labels", type=Path, required=True, help="labels table (Parquet)")
    parser.add_argument("--max-rows", type=int, default=None, help="score the first N label rows only")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="greedy answer length (default 8; 160 with --cot)"
    )
    parser.add_argument(
        "--cot",
        action="store_true",
        help="ask for chain-of-thought before the verdict (critic.train.describe_first critics)",
    )
    parser.add_argument(
        "--read",
        choices=("greedy", "first-token", "both-orders", "judge-first"),
        default="greedy",
        help="greedy answers (what the served critic says); the most likely first verdict token; or "
        "that with every pairwise question also asked with its videos swapped, the orders averaged; or "
        "that after the critic's own pointwise verdicts on both videos (critic.train.judge_first critics)",
    )
    args = parser.parse_args()
    # Bad input is refused before any model loads.
    missing = [str(c) for c in args.critics if not ((c / "config.json").is_file() or is_adapter(c))]
    if missing:
        sys.exit(f"{parser.prog}: not critic folders (no config.json or adapter_config.json): {missing}")
    if len({c.resolve() for c in args.critics}) < len(args.critics):
        sys.exit(f"{parser.prog}: a critic folder is given twice: {[str(c) for c in args.critics]}")
    names = _column_names(args.critics)
    if not is_committed(args.labels):
        sys.exit(f"{parser.prog}: {args.labels} is not a committed labels table")
    examples = examples_from_labels(read_table(args.labels, TableKind.LABELS))[: args.max_rows]
    if args.cot:
        examples = [replace(e, cot=True) for e in examples]
    max_new_tokens = args.max_new_tokens or (DESCRIBE_FIRST_TOKENS if args.cot else 8)
    if not examples:
        sys.exit(f"{parser.prog}: {args.labels} holds no pointwise or pairwise labels")
    cfg = load_config()
    frames = FrameCache(cfg.video.num_frames)
    references = {"labels": [e.verdict for e in examples]}
    prompts = args.labels.with_name("prompts.parquet")
    if is_committed(prompts):
        references["oracle"] = oracle_verdicts(
            examples, read_table(prompts, TableKind.PROMPTS), render_settings(cfg.world.render)
        )
    results = {}
    for critic, critic_name in zip(args.critics, names, strict=True):
        if args.read == "greedy":
            sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
            predicted = greedy_verdicts(TransformersBackend(critic, sampling), examples, frames)
        else:
            read = {
                "first-token": first_token_verdicts,
                "both-orders": both_orders_verdicts,
                "judge-first": judge_first_verdicts,
            }[args.read]
            predicted = read(*load_critic(critic), examples, frames)
        for name, reference in references.items():
            results[f"{critic_name}:{name}"] = accuracy(examples, predicted, reference)
    if "oracle" in references:
        results["labels:oracle"] = accuracy(examples, references["labels"], references["oracle"])
    print(f"{len(examples)} labelled questions from {args.labels}, read: {args.read}")
    print(format_table(results))


def _column_names(critics: list[Path]) -> list[str]:
    """Each critic's version from its training manifest, else its folder name; the folder as given
    where two critics would share a name (runs continued from one another keep their version), so
    that no column overwrites another."""
    names = []
    for critic in critics:
        manifest = critic / MANIFEST
        names.append(json.loads(manifest.read_text())["version"] if manifest.is_file() else critic.name)
    return [str(c) if names.count(n) > 1 else n for c, n in zip(critics, names, strict=True)]


if __name__ == "__main__":
    main()
