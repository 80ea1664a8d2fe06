"""The annotation studio: build task queues, serve the labelling page, simulate annotators, aggregate.

Everything lives in the studio folder `annotate.dir` (default runs/studio): ``studio.db`` holds the
tasks, assignments and every label; exports go where ``--out`` says.

    # 1. Queue tasks from a candidates table (pointwise per candidate, pairwise per prompt; gold mixed in)
    python jobs/annotate.py queue --candidates RUN/candidates.parquet --prompts RUN/prompts.parquet \
        [--pairs-per-prompt 1] [--no-pointwise] [--gold gold.jsonl] [--batch seed]
    # 2. Serve the page at http://127.0.0.1:8000/annotate (Ray Serve; beside the critic app if it runs)
    python jobs/annotate.py serve [annotate.port=8000] [annotate.tokens_file=tokens.json]
    ray job submit --working-dir . -- python jobs/annotate.py serve --detach annotate.host=0.0.0.0
    # 3. (Embedded world) the simulated annotators label through the running studio's HTTP API
    python jobs/annotate.py simulate --url http://127.0.0.1:8000/annotate --prompts RUN/prompts.parquet
    # 4. Majority vote, agreement (Fleiss' kappa), gold accuracy → the seed labels table
    python jobs/annotate.py aggregate --out runs/seed-studio
    # 5. Critic verdicts on the voted tasks, for the disagreement view at /annotate/disagreements
    python jobs/annotate.py critic --url http://127.0.0.1:8000 [--upload]    # the critic's service
    python jobs/annotate.py critic [critic.path=FOLDER]                      # or in this process
    # 6. LiFT's data correction: coarse filter, split-half cross-labelling, review tasks queued
    python jobs/annotate.py correct --out runs/seed-corrected [--labels L.parquet] [annotate.correct.steps=N]

Gold files hold one JSON object per line: {"video_id": ..., "video_id_b": null or ..., "answers":
{dimension: answer}}, naming candidates of the queued table. Every command also takes
``--config FILE`` and dotted ``KEY=VALUE`` overrides (the `annotate` and `world` sections).
"""

import argparse
import json
import os
import threading
import time
from pathlib import Path

from ipo_ray.config import add_config_args, parse_config
from ipo_ray.data import TableKind, read_table
from ipo_ray.data import columns as col


def _store(cfg):  # noqa: ANN001, ANN202 - a Config → a Store
    from ipo_ray.annotate.store import Store

    return Store(Path(cfg.annotate.dir) / "studio.db", lease_s=cfg.annotate.lease_minutes * 60)


def queue(args: argparse.Namespace, cfg) -> None:  # noqa: ANN001 - a Config
    from ipo_ray.annotate.tasks import GoldItem, build_tasks, check_prompt_lengths, gold_tasks, mix_gold

    candidates = read_table(args.candidates, TableKind.CANDIDATES)
    prompts = read_table(args.prompts, TableKind.PROMPTS)
    text = dict(zip(prompts[col.PROMPT_ID].to_pylist(), prompts[col.TEXT].to_pylist(), strict=True))
    tasks = build_tasks(
        candidates,
        text,
        root=Path(args.candidates).parent,
        needed=cfg.annotate.annotators_per_task,
        pointwise=not args.no_pointwise,
        pairs_per_prompt=args.pairs_per_prompt,
        batch=args.batch,
    )
    if args.gold:
        lines = Path(args.gold).read_text().splitlines()
        gold = [
            GoldItem(d["video_id"], d.get("video_id_b"), d["answers"]) for d in map(json.loads, lines) if d
        ]
        tasks = mix_gold(tasks, gold_tasks(gold, tasks), cfg.annotate.gold_every)
    check_prompt_lengths(tasks, cfg.annotate.max_prompt_chars)
    added = _store(cfg).add_tasks(tasks)
    print(f"{cfg.annotate.dir}: {added} tasks added ({len(tasks) - added} were already queued)")


def serve_studio(args: argparse.Namespace, cfg) -> None:  # noqa: ANN001 - a Config
    from ray import serve

    from ipo_ray.annotate.serve import start

    # 1-2. Join the cluster (or start a local one), start Serve's proxy if none runs, deploy the studio.
    url = start(cfg)
    print(f"annotation studio at {url}")
    if args.detach:
        return
    # 3. Keep the driver (and a local cluster) alive until interrupted; then remove only the studio,
    # since the critic app may share this Serve instance.
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        serve.delete(cfg.annotate.app_name)


def simulate(args: argparse.Namespace, cfg) -> None:  # noqa: ANN001 - a Config
    from ipo_ray.annotate.sim_client import run_simulated_annotators
    from ipo_ray.world.build import annotators, render_settings
    from ipo_ray.world.prompts import spec_from_json

    prompts = read_table(args.prompts, TableKind.PROMPTS).to_pylist()
    specs = {p[col.PROMPT_ID]: spec_from_json(p[col.SPEC_JSON]) for p in prompts if p[col.SPEC_JSON]}
    tokens = json.loads(Path(cfg.annotate.tokens_file).read_text()) if cfg.annotate.tokens_file else None
    start = time.perf_counter()
    people = annotators(cfg.world.annotators)
    done = run_simulated_annotators(args.url, people, specs, render_settings(cfg.world.render), tokens)
    print(f"labelled {done} in {time.perf_counter() - start:.1f} s")


def aggregate_labels(args: argparse.Namespace, cfg) -> None:  # noqa: ANN001 - a Config
    from ipo_ray.annotate.aggregate import aggregate, write_export

    result = aggregate(_store(cfg))
    write_export(result, args.out)
    r = result.report
    print(
        f"{args.out}: {r.labels} voted labels from {r.complete}/{r.tasks} complete tasks, "
        f"{r.no_majority} flagged for review (review.jsonl), {len(r.skips)} skips"
    )
    for key, kappa in r.kappa.items():
        print(f"  Fleiss' kappa {key:34s} {kappa:6.3f}")
    for who, accuracy in r.gold_accuracy.items():
        print(
            f"  gold accuracy {who:20s} {accuracy:6.3f} ({r.gold_answers[who]} answers, "
            f"median {r.seconds.get(who, 0):.1f} s per task)"
        )


def score_with_critic(args: argparse.Namespace, cfg) -> None:  # noqa: ANN001 - a Config
    from ipo_ray.annotate.aggregate import aggregate
    from ipo_ray.annotate.critic_scoring import HttpCritic, LocalCritic, critic_version
    from ipo_ray.annotate.disagreements import find_disagreements

    store = _store(cfg)
    voted = aggregate(store).voted
    voted_ids = {task_id for task_id, _ in voted}
    tasks = [t for t in store.tasks() if t.task_id in voted_ids]
    start = time.perf_counter()
    if args.url:
        from ipo_ray.critic.client import CriticClient

        with CriticClient(args.url, token=os.environ.get("IPO_RAY_CRITIC_TOKEN")) as client:
            verdicts = HttpCritic(client, upload=args.upload)(tasks)
    else:
        from ipo_ray.critic.hf_backend import TransformersBackend
        from ipo_ray.critic.judge import SamplingConfig
        from ipo_ray.critic.serve.versions import resolve_critic_path
        from ipo_ray.critic.tokenizer import judges_first

        c = cfg.critic
        folder = resolve_critic_path(c.path)
        sampling = SamplingConfig(c.temperature, c.top_p, c.max_new_tokens, c.seed)
        backend = TransformersBackend(folder, sampling)
        scorer = LocalCritic(backend, critic_version(folder), c.samples, cfg.video.num_frames,
                             judge_first=judges_first(backend.processor.tokenizer), read=c.vote)  # fmt: skip
        verdicts = scorer(tasks)
    store.put_critic_verdicts(verdicts)
    found = find_disagreements(store.tasks(), voted, store.labels(), store.critic_verdicts())
    print(
        f"critic verdicts for {len(tasks)} voted tasks in {time.perf_counter() - start:.1f} s: "
        f"{len(found)} disagreements with the human vote ({cfg.annotate.route_prefix}/disagreements)"
    )


def correct_labels(args: argparse.Namespace, cfg) -> None:  # noqa: ANN001 - a Config
    from ipo_ray.annotate.aggregate import aggregate
    from ipo_ray.annotate.correction import correct, format_stages, item_of, report, write_correction
    from ipo_ray.annotate.half_critic import HalfCritic
    from ipo_ray.annotate.tasks import queue_reviews

    # 1. The labels: a given table, or the studio's current vote.
    store = _store(cfg)
    rows = read_table(args.labels, TableKind.LABELS).to_pylist() if args.labels else aggregate(store).labels
    # 2. Coarse filter and split-half cross-labelling, each half's critic trained on a small budget.
    c, t = cfg.annotate.correct, cfg.critic.train
    judge_half = HalfCritic(
        work_dir=str(Path(args.out) / "critics"), init=c.init, num_frames=cfg.video.num_frames,
        steps=c.steps, minutes=c.minutes, batch_size=c.batch_size, lr=t.lr, warmup_steps=t.warmup_steps,
        with_reasons=t.with_reasons, describe_share=t.describe_share, threads=t.threads,
        vocab_size=t.vocab_size, seed=c.seed,
    )  # fmt: skip
    start = time.perf_counter()
    result = correct(rows, judge_half, c.seed)
    # 3. One review task per item with a disagreement, in front of the studio's queue.
    items = list(dict.fromkeys(item_of(r) for r in result.review))
    queued = queue_reviews(
        store, [r for r in rows if item_of(r) in set(items)], cfg.annotate.review_annotators
    )
    summary = report(result, queued)
    write_correction(result, summary, args.out)
    print(format_stages(result.stages))
    print(
        f"{args.out}: {len(result.kept)} labels kept (labels.parquet), {queued} review tasks queued for "
        f"{len(items)} items in {cfg.annotate.dir}, {time.perf_counter() - start:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("queue", help="add tasks from a candidates table")
    q.add_argument("--candidates", required=True)
    q.add_argument("--prompts", required=True)
    q.add_argument("--pairs-per-prompt", type=int, default=1)
    q.add_argument("--no-pointwise", action="store_true")
    q.add_argument("--gold", help="JSON lines of gold items")
    q.add_argument("--batch", default="seed")
    s = commands.add_parser("serve", help="serve the labelling page with Ray Serve")
    s.add_argument("--detach", action="store_true", help="return once the app is up")
    m = commands.add_parser("simulate", help="the world's simulated annotators label through the studio")
    m.add_argument("--url", required=True)
    m.add_argument("--prompts", required=True)
    a = commands.add_parser("aggregate", help="vote and write the seed labels table")
    a.add_argument("--out", required=True)
    c = commands.add_parser("critic", help="store critic verdicts of the voted tasks (disagreement view)")
    c.add_argument("--url", help="the critic service's URL; without it the critic runs in this process")
    c.add_argument("--upload", action="store_true", help="send the videos' bytes, not their paths")
    r = commands.add_parser("correct", help="LiFT data correction; queues review tasks")
    r.add_argument("--out", required=True)
    r.add_argument("--labels", help="a labels table; default: the studio's current vote")
    for sub in (q, s, m, a, c, r):
        add_config_args(sub)
    args, cfg = parse_config(parser)
    commands_by_name = {
        "queue": queue,
        "serve": serve_studio,
        "simulate": simulate,
        "aggregate": aggregate_labels,
        "critic": score_with_critic,
        "correct": correct_labels,
    }
    commands_by_name[args.command](args, cfg)


if __name__ == "__main__":
    main()
