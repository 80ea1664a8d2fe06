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

By default each critic is read as the app serves it (``--read served``, `evaluate.served_read_name`:
judge-first for a critic whose checkpoint declares it; the others by their first verdict token, as
``critic.vote=first_token`` serves them, in both orders if ``serve.compare_both_orders``; greedy
under ``critic.vote=samples``). With ``--url`` the running app itself is
scored too: its voted verdicts over HTTP (n samples, the version's own read), one request per item::

    python jobs/eval_critic.py --labels runs/seed41/labels.parquet --url http://127.0.0.1:8000
"""

import argparse
import json
import os
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
    served_read_name,
)
from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import SamplingConfig
from ipo_ray.critic.judge_first import judge_first_verdicts
from ipo_ray.critic.model import critic_judges_first, load_critic
from ipo_ray.critic.sft import FrameCache, examples_from_labels
from ipo_ray.data import TableKind, is_committed, read_table
from ipo_ray.world.build import render_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("critics", nargs="*", type=Path, help="critic folders")
    parser.add_argument(
        "--url",
        default=None,
        help="also score a running critic app (jobs/serve_critic.py) over HTTP: its voted verdicts, as "
        "clients get them (videos named by path: the labels' videos must lie under serve.allowed_root; "
        "bearer token from $IPO_RAY_CRITIC_TOKEN)",
    )
    parser.add_argument("--version", default=None, help="with --url: the critic version to ask")
    parser.add_argument("--samples", type=int, default=None, help="with --url: n per question")
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
        choices=("served", "greedy", "first-token", "both-orders", "judge-first"),
        default="served",
        help="greedy answers; the most likely first verdict token; or that with every pairwise "
        "question also asked with its videos swapped, the orders averaged; or that after the critic's "
        "own pointwise verdicts on both videos; or (the default) as the app reads the critic: "
        "judge-first for critics that judge first (critic.train.judge_first), the others as critic.vote "
        "and serve.compare_both_orders say (first-token by default)",
    )
    args = parser.parse_args()
    # Bad input is refused before any model loads.
    if not args.critics and not args.url:
        sys.exit(f"{parser.prog}: name critic folders to score, or a running app with --url")
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
    reads = []
    for critic, critic_name in zip(args.critics, names, strict=True):
        read_name = args.read
        if read_name == "served":
            read_name = served_read_name(
                critic_judges_first(critic), cfg.critic.vote, cfg.serve.compare_both_orders
            )
        reads.append(f"{critic_name} {read_name}")
        if read_name == "greedy":
            sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
            predicted = greedy_verdicts(TransformersBackend(critic, sampling), examples, frames)
        else:
            read = {
                "first-token": first_token_verdicts,
                "both-orders": both_orders_verdicts,
                "judge-first": judge_first_verdicts,
            }[read_name]
            predicted = read(*load_critic(critic), examples, frames)
        for name, reference in references.items():
            results[f"{critic_name}:{name}"] = accuracy(examples, predicted, reference)
    if args.url:
        from ipo_ray.critic.client import CriticClient
        from ipo_ray.critic.served_eval import served_verdicts

        with CriticClient(args.url, token=os.environ.get("IPO_RAY_CRITIC_TOKEN")) as client:
            predicted, version = served_verdicts(client, examples, args.version, args.samples)
        reads.append(f"served:{version} http")
        for name, reference in references.items():
            results[f"served:{version}:{name}"] = accuracy(examples, predicted, reference)
    if "oracle" in references:
        results["labels:oracle"] = accuracy(examples, references["labels"], references["oracle"])
    same = len({r.split()[-1] for r in reads}) == 1
    read_names = reads[0].split()[-1] if same else ", ".join(reads)
    print(f"{len(examples)} labelled questions from {args.labels}, read: {read_names}")
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
