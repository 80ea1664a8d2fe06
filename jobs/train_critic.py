"""Train the VLM critic on a labels table (IPO Eq. 1) and print its held-out accuracy per dimension.

From scratch (a new tiny Qwen2-VL with an offline tokenizer built from the training captions and
reasons) or from a critic folder (`critic.train.init`); on a labels table (`critic.train.labels`)
or on the world seed set, built under RUN_ROOT/NAME/seed-set when no table is given. Training runs
on Ray Train workers (`critic.train.runner=ray`, gloo, fractional CPUs) or in this process
(`runner=local`). The checkpoint folder loads in `load_critic` and in vLLM. Accuracy is printed
against the labels and, for world data, against the noise-free oracle (greedy answers, parsed).

A critic built from scratch first goes through the vision warm-up (`critic.train.vision_warmup_steps`,
critic/probe.py) in this process; `critic.train.attribute_warmup_steps` adds one that also teaches
the vision tower what world clips show (critic/attributes.py), on a new critic or an init one.
`critic.train.srpo_pairs` adds Dual-IPO's SRPO loss on a pairs
file written by a round's refresh: with `init` and `labels` set to that round's critic and
pseudo-labels, the refresh can be re-run with and without the loss (the SRPO ablation).

    python jobs/train_critic.py [--config FILE] [--no-reasons] [KEY=VALUE ...]
    python jobs/train_critic.py run.name=critic critic.train.minutes=25 critic.train.runner=local
    ray job submit --working-dir . -- python jobs/train_critic.py critic.train.workers=2
"""

import argparse
import json
import shutil
import time
from dataclasses import fields, replace
from pathlib import Path

import torch
from transformers import AutoTokenizer

from ipo_ray.config import Config, ConfigError, add_config_args, config_from_args
from ipo_ray.config.critic_train import CriticTrainConfig
from ipo_ray.critic.adapters import is_adapter
from ipo_ray.critic.attributes import attribute_targets
from ipo_ray.critic.augment import (
    DESCRIBE_FIRST_TOKENS,
    self_descriptions,
    with_descriptions,
    with_mirrored_pairs,
)
from ipo_ray.critic.checkpoint import MANIFEST
from ipo_ray.critic.contrast import specs_by_caption
from ipo_ray.critic.evaluate import (
    accuracy,
    format_table,
    greedy_verdicts,
    majority_baseline,
    oracle_verdicts,
)
from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import SamplingConfig
from ipo_ray.critic.judge_first import judge_first_verdicts, own_verdicts
from ipo_ray.critic.model import (
    CriticArchitecture,
    build_critic,
    critic_judges_first,
    deepen_critic,
    load_critic,
    relayout_critic,
)
from ipo_ray.critic.probe import warm_up_vision
from ipo_ray.critic.sft import FrameCache, SftExample, examples_from_labels, split_held_out
from ipo_ray.critic.tokenizer import caption_first, set_judges_first
from ipo_ray.critic.train_loop import TrainPlan, train_critic
from ipo_ray.critic.train_ray import fit_with_ray
from ipo_ray.data import TableKind, is_committed, read_table
from ipo_ray.world.build import render_settings, seed_set
from ipo_ray.world.render import RenderSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-reasons", action="store_true", help="verdict-only answers (LiFT Table 2 ablation)"
    )
    add_config_args(parser)
    args = parser.parse_intermixed_args()  # --no-reasons may come anywhere among KEY=VALUE
    if args.no_reasons:
        args.overrides.append("critic.train.with_reasons=false")
    try:
        cfg = config_from_args(args)
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    t = cfg.critic.train
    # Absolute paths: Ray Train workers do not run in this directory.
    run_dir = Path(cfg.run.root).resolve() / (cfg.run.name or "critic")
    out_dir = Path(t.out).resolve() if t.out else run_dir / "critic"
    start = time.perf_counter()
    if t.srpo_pairs and not Path(t.srpo_pairs).is_file():
        parser.exit(2, f"{parser.prog}: critic.train.srpo_pairs: {t.srpo_pairs} is not a file\n")
    if t.init and not ((Path(t.init) / "config.json").is_file() or is_adapter(t.init)):
        parser.exit(
            2,
            f"{parser.prog}: critic.train.init: {t.init} is not a critic folder "
            "(no config.json or adapter_config.json)\n",
        )

    if t.caption_first is not None and t.init and is_adapter(t.init):
        parser.exit(
            2,
            f"{parser.prog}: critic.train.caption_first: {t.init} is an adapter; its base fixes the "
            "prompt layout\n",
        )
    if t.deepen_layers and is_adapter(t.init):
        parser.exit(
            2, f"{parser.prog}: critic.train.deepen_layers: {t.init} is an adapter; deepen a full critic\n"
        )

    # 1. Labels: the given table, or the world seed set (built once, reused by later runs).
    prompts_path = None
    if t.labels:
        labels_path = Path(t.labels).resolve()
    else:
        seed_dir = run_dir / "seed-set"
        labels_path = seed_dir / "labels.parquet"
        if not is_committed(labels_path):
            summary = seed_set(cfg, seed_dir)
            print(f"seed set: {summary.clips} videos, {summary.labels} labels in {seed_dir}")
    # World labels come with a prompts table of specs beside them: then the oracle judges too.
    if is_committed(labels_path.with_name("prompts.parquet")):
        prompts_path = labels_path.with_name("prompts.parquet")
    for key in ("contrast_pairs", "attribute_warmup_steps"):
        if getattr(t, key) and prompts_path is None:
            parser.exit(
                2, f"{parser.prog}: critic.train.{key}: no prompts table with specs beside {labels_path}\n"
            )
    examples = examples_from_labels(read_table(labels_path, TableKind.LABELS))

    # 2. The critic to start from.
    warmup_loss = None
    if t.init:
        init_dir = Path(t.init).resolve()
        if t.deepen_layers:
            init_dir = deepen_critic(init_dir, run_dir / "deepened", t.deepen_layers)
            print(f"deepened {t.init} by {t.deepen_layers} language-model layers in {init_dir}")
        if t.caption_first is not None and t.caption_first != _reads_caption_first(init_dir):
            init_dir = relayout_critic(init_dir, run_dir / "relaid", t.caption_first)
            print(f"prompt layout of {init_dir}: caption first = {t.caption_first}")
    else:
        corpus = sorted({e.caption for e in examples} | {e.reason for e in examples})
        arch = CriticArchitecture(
            vocab_size=t.vocab_size,
            patch_size=t.patch_size,
            temporal_patch_size=t.temporal_patch_size,
            vision_embed=t.vision_embed,
            vision_heads=t.vision_embed // 32,
            text_hidden=t.text_hidden,
            text_layers=t.text_layers,
            text_heads=t.text_hidden // 32,
            text_kv_heads=t.text_hidden // 64,
            text_intermediate=t.text_intermediate,
        )
        init_dir = build_critic(run_dir / "init", corpus, arch, t.seed, caption_first=bool(t.caption_first))
        if t.vision_warmup_steps:
            # Stage 1 (critic/probe.py): the vision tower learns what decides a verdict first.
            warmup_loss = _warm_up(cfg, init_dir, init_dir, examples, t.vision_warmup_steps)
    attribute_loss = None
    if t.attribute_warmup_steps:
        # Stage 1b (critic/attributes.py): and what the clips show, which the verdicts never ask.
        train, _ = split_held_out(examples, t.held_out, t.seed)
        specs = specs_by_caption(read_table(prompts_path, TableKind.PROMPTS).to_pylist())
        targets = attribute_targets(train, specs)
        print(f"attribute warm-up: {t.attribute_warmup_steps} steps, {len(targets)} clips with attributes")
        warm_dir = run_dir / "attribute-warm"
        attribute_loss = _warm_up(cfg, init_dir, warm_dir, examples, t.attribute_warmup_steps, targets)
        init_dir = warm_dir

    # Describe-first: the critic's own descriptions of every video become the chain-of-thought.
    descriptions_path = None
    if t.describe_first:
        describer = TransformersBackend(init_dir, SamplingConfig(temperature=0.0, max_new_tokens=64))
        videos = [p for e in examples for p in e.video_paths]
        described = self_descriptions(describer, videos, FrameCache(cfg.video.num_frames))
        descriptions_path = run_dir / "descriptions.json"
        run_dir.mkdir(parents=True, exist_ok=True)
        descriptions_path.write_text(json.dumps(described, indent=0))
        print(f"describe-first: {len(described)} videos described by {init_dir} in {descriptions_path}")

    # Judge-first: the critic's own pointwise verdicts on both videos become each pair's thinking.
    # Unset, the init critic's read carries over (a judge-first critic stays one when fine-tuned).
    judge_first = t.judge_first
    if judge_first is None:
        judge_first = bool(t.init) and not t.describe_first and critic_judges_first(init_dir)
    pair_thinking_path = None
    if judge_first:
        thinking = own_verdicts(*load_critic(init_dir), examples, FrameCache(cfg.video.num_frames))
        pair_thinking_path = run_dir / "pair_thinking.json"
        run_dir.mkdir(parents=True, exist_ok=True)
        pair_thinking_path.write_text(json.dumps(thinking, indent=0))
        print(f"judge-first: {len(thinking)} pairwise questions judged by {init_dir} in {pair_thinking_path}")

    # 3. Train (Ray Train workers or this process): the contrast warm-up, if any, then SFT.
    settings = render_settings(cfg.world.render)
    plan = TrainPlan(
        init_dir=str(init_dir),
        labels_path=str(labels_path),
        out_dir=str(out_dir),
        version=t.version,
        num_frames=cfg.video.num_frames,
        with_reasons=t.with_reasons,
        verdict_weight=t.verdict_weight,
        describe_share=t.describe_share,
        mirror_pairs=t.mirror_pairs,
        contrast_pairs=t.contrast_pairs,
        contrast_kind=t.contrast_kind,
        descriptions_path=str(descriptions_path) if descriptions_path else None,
        pair_thinking_path=str(pair_thinking_path) if pair_thinking_path else None,
        probe_weight=t.probe_weight,
        srpo_pairs_path=t.srpo_pairs,
        srpo_beta=cfg.loop.srpo.beta,
        srpo_weight=cfg.loop.srpo.preference_weight,
        srpo_pairs_per_step=cfg.loop.srpo.pairs_per_step,
        lr=t.lr,
        weight_decay=t.weight_decay,
        batch_size=t.batch_size,
        steps=t.steps,
        minutes=t.minutes,
        warmup_steps=t.warmup_steps,
        lora=t.lora,
        save_adapter=t.save_adapter,
        lora_rank=t.lora_rank,
        lora_alpha=t.lora_alpha,
        held_out=t.held_out,
        eval_every=t.eval_every,
        eval_max=t.eval_max,
        seed=t.seed,
        threads=t.threads,
        bf16=t.bf16,
        prompts_path=str(prompts_path) if prompts_path else None,
        render={f.name: getattr(settings, f.name) for f in fields(RenderSettings)},
    )
    contrast_warmup = None
    if t.contrast_warmup_steps:
        warm = replace(
            plan,
            out_dir=str(run_dir / "contrast-warm"),
            version=f"{t.version}-contrast-warm",
            contrast_only=True,
            steps=t.contrast_warmup_steps,
            minutes=None,
            eval_every=t.contrast_warmup_steps,  # one evaluation, at the end
            describe_share=0.0,
            probe_weight=0.0,
            srpo_pairs_path=None,
            save_adapter=False,  # SFT continues from a full folder
        )
        print(f"contrast warm-up: {t.contrast_warmup_steps} steps on contrasts only, into {warm.out_dir}")
        contrast_warmup = _fit(warm, t, run_dir / "ray", "critic-contrast-warm")
        plan = replace(plan, init_dir=warm.out_dir)
    _fit(plan, t, run_dir / "ray", "critic-sft")
    if (out_dir / "tokenizer_config.json").is_file():  # the checkpoint records how it reads pairs
        _record_pairwise_read(out_dir, judge_first)
    train_minutes = (time.perf_counter() - start) / 60

    # 4. Held-out accuracy of greedy answers (a judge-first critic: read as it is served, its own
    # verdicts on both videos first), against the labels and (world data) the oracle.
    train, held = split_held_out(examples, t.held_out, t.seed)
    if not held:
        print(f"no held-out labels (critic.train.held_out={t.held_out}); critic in {out_dir}")
        return
    max_new_tokens = t.max_new_tokens
    if descriptions_path:  # the critic describes before it answers (question with chain-of-thought)
        held = with_descriptions(held, json.loads(descriptions_path.read_text()))
        max_new_tokens = max(max_new_tokens, DESCRIBE_FIRST_TOKENS)
    frames = FrameCache(cfg.video.num_frames)
    if judge_first:
        predicted = judge_first_verdicts(*load_critic(out_dir), held, frames)
    else:
        backend = TransformersBackend(out_dir, SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens))
        predicted = greedy_verdicts(backend, held, frames)
    labels = [e.verdict for e in held]
    baseline = majority_baseline(train, held)
    results = {"labels": accuracy(held, predicted, labels)}
    if prompts_path:
        oracle = oracle_verdicts(held, read_table(prompts_path, TableKind.PROMPTS), settings)
        results["oracle"] = accuracy(held, predicted, oracle)
        results["baseline:oracle"] = accuracy(held, baseline, oracle)  # most frequent training verdict
    results["baseline:labels"] = accuracy(held, baseline, labels)
    manifest_file = out_dir / MANIFEST
    manifest = json.loads(manifest_file.read_text())
    if contrast_warmup is not None:
        manifest["contrast_warmup"] = {"steps": t.contrast_warmup_steps, "evaluation": contrast_warmup}
    if warmup_loss is not None:
        manifest["vision_warmup"] = {"steps": t.vision_warmup_steps, "probe_loss": warmup_loss}
    if attribute_loss is not None:
        manifest["attribute_warmup"] = {"steps": t.attribute_warmup_steps, "probe_loss": attribute_loss}
    manifest["evaluation"] = {
        "held_out_rows": len(held),
        "greedy": results,  # the key predates the judge-first read; "read" says which it was
        "read": "judge-first" if judge_first else "greedy",
        "train_minutes": train_minutes,
    }
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    reasons = "with reasons" if t.with_reasons else "verdict only"
    print(
        f"critic {t.version} ({reasons}) in {out_dir}: {len(held)} held-out labels, {train_minutes:.1f} min"
    )
    print(format_table(results))


def _warm_up(
    cfg: Config,
    src: Path,
    out: Path,
    examples: list[SftExample],
    steps: int,
    attributes: dict[str, list[int]] | None = None,
) -> float:
    """A vision warm-up (critic/probe.py) of the critic in `src` on the training split, saved to
    `out` (a copy of `src` first, unless the same folder); returns the last probe loss."""
    t = cfg.critic.train
    if out != src:
        shutil.copytree(src, out, dirs_exist_ok=True)
    model, processor = load_critic(out)
    train, _ = split_held_out(examples, t.held_out, t.seed)
    if t.mirror_pairs:
        train = with_mirrored_pairs(train)
    torch.manual_seed(t.seed)
    torch.set_num_threads(t.threads)
    loss = warm_up_vision(
        model,
        processor,
        train,
        FrameCache(cfg.video.num_frames),
        steps,
        lr=t.lr,
        weight_decay=t.weight_decay,
        seed=t.seed,
        log=lambda m: print(_progress(m), flush=True),
        attributes=attributes,
    )
    model.save_pretrained(out)
    return loss


def _fit(plan: TrainPlan, t: CriticTrainConfig, storage: Path, name: str) -> dict[str, float]:
    """Runs `plan` on the configured runner; returns its last evaluation's metrics."""
    if t.runner == "local":
        return train_critic(plan, report=lambda m: print(_progress(m), flush=True))
    from ipo_ray.local_ray import start_or_join_ray

    start_or_join_ray(log_to_driver=True)
    return fit_with_ray(
        plan, t.workers, t.cpus_per_worker, str(storage), name, gpus_per_worker=t.gpus_per_worker
    )


def _reads_caption_first(critic_dir: Path) -> bool:
    """The prompt layout a critic folder was trained with (kept in its tokenizer's config)."""
    return caption_first(AutoTokenizer.from_pretrained(critic_dir))


def _record_pairwise_read(critic_dir: Path, judge_first: bool) -> None:
    tokenizer = AutoTokenizer.from_pretrained(critic_dir)
    set_judges_first(tokenizer, judge_first)
    tokenizer.save_pretrained(critic_dir)


def _progress(metrics: dict[str, float]) -> str:
    keys = (
        "train/step",
        "train/minutes",
        "train/loss",
        "critic/oracle/pointwise/mean",
        "critic/oracle/pairwise/all",
        "critic/contrast/pointwise",
        "critic/contrast/pairwise",
        "critic/answer_loss/right_video",
        "critic/answer_loss/shuffled_video",
    )
    return " ".join(f"{k}={metrics[k]:.3f}" for k in keys if k in metrics) + " " + json.dumps(metrics)


if __name__ == "__main__":
    main()
