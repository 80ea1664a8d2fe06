"""Pretrain the embedded world's text-to-video generator on the world's web set, then benchmark it.

Trains a `WorldModel` (pixel-space `WanTransformer3DModel` + 2-layer T5, flow matching; see
`ipo_ray.generator.world_model`) for a fixed wall-clock budget on freshly rendered web-set clips
(30% carry a planted defect), on one CPU thread. Every `--checkpoint-minutes` and at the end it
writes the EMA weights to `--out` (atomically: a temporary folder renamed into place), then scores
the final model on the world benchmark (oracle, 96 prompts) without and with guidance, beside the
clean / defective / noise reference rows.

The shipped checkpoints were made with (one process per size, run side by side):

    OMP_NUM_THREADS=1 python jobs/pretrain_world_generator.py --size small --minutes 65 \
        --out ipo_ray/assets/world_generator/small
    OMP_NUM_THREADS=1 python jobs/pretrain_world_generator.py --size large --minutes 65 \
        --out ipo_ray/assets/world_generator/large

The large checkpoint then trained on from its own weights (a fresh optimiser and data seed; the
metadata keeps both stints), because in 65 minutes beside the small run it had taken only 4,354 steps
to the small model's 7,829 and scored level with it:

    OMP_NUM_THREADS=1 python jobs/pretrain_world_generator.py --size large --minutes 75 --seed 1 \
        --lr 4e-4 --warmup-steps 50 --init ipo_ray/assets/world_generator/large --out runs/large-v2

A plain process, not a Ray job: pretraining runs once, not in the alignment loop.
"""

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from ipo_ray.generator.world_model import (
    SIZES,
    build_world_model,
    count_parameters,
    load_world_model,
    save_world_model,
)
from ipo_ray.generator.world_train import EMA, WebStream, benchmark_model, train_step
from ipo_ray.world.benchmark import format_table, reference_sets, score_clips
from ipo_ray.world.geometry import RenderSettings


def lr_at(step: int, elapsed: float, budget: float, lr: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, constant, then linear decay to 10% over the last 30% of time."""
    scale = min(1.0, (step + 1) / warmup)
    tail = (elapsed / budget - 0.7) / 0.3
    return lr * scale * (1.0 - 0.9 * min(max(tail, 0.0), 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), required=True)
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock training budget")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (replaced)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--fresh-per-step", type=int, default=8, help="newly rendered clips per batch")
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3 small, 8e-4 large")
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--guidance-scale", type=float, default=3.0, help="for the guided benchmark row")
    parser.add_argument("--inference-steps", type=int, default=20)
    parser.add_argument("--benchmark-prompts", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", type=Path, default=None, help="train on from this checkpoint (same size)")
    args = parser.parse_args()
    lr = args.lr or (1e-3 if args.size == "small" else 8e-4)

    # 1. Model, optimiser, data stream (the world's default geometry: 4 frames of 16×16).
    torch.set_num_threads(args.threads)
    settings = RenderSettings()
    model = build_world_model(args.size, settings, seed=args.seed)
    earlier: list[dict] = []
    if args.init is not None:
        # Checked before any training: a checkpoint of another size or geometry cannot continue here.
        loaded, loaded_settings, meta = load_world_model(args.init)
        if meta.get("size") != args.size or loaded_settings != settings:
            parser.exit(
                2, f"{args.init} holds size {meta.get('size')!r}, not {args.size!r} at the default geometry\n"
            )
        model.load_state_dict(loaded.state_dict())
        model.train()
        previous = dict(meta.get("training", {}))
        previous.pop("benchmark", None)
        earlier = [*previous.pop("earlier", []), previous]  # every stint, oldest first
    params = count_parameters(model)
    print(f"world generator {args.size}: {params}", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    ema = EMA(model, args.ema_decay)
    stream = WebStream(settings, args.batch_size, args.fresh_per_step, defect_rate=0.3, seed=args.seed)
    noise_gen = torch.Generator().manual_seed(args.seed)

    # 2. Train for the time budget, checkpointing the EMA weights every few minutes.
    budget, start = args.minutes * 60.0, time.perf_counter()
    last_save, step, recent = start, 0, []

    def stats() -> dict:
        return {
            "steps": step,
            "minutes": round((time.perf_counter() - start) / 60.0, 2),
            "loss_last_100": round(sum(recent[-100:]) / max(len(recent[-100:]), 1), 5),
            "batch_size": args.batch_size,
            "lr": lr,
            "ema_decay": args.ema_decay,
            "clips_rendered": stream.rendered,
            "defect_rate": 0.3,
            "threads": args.threads,
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        } | ({"earlier": earlier, "total_steps": step + sum(e["steps"] for e in earlier)} if earlier else {})

    while (elapsed := time.perf_counter() - start) < budget:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, elapsed, budget, lr, args.warmup_steps)
        clean, texts = stream.next()
        recent.append(train_step(model, optimizer, clean, texts, noise_gen))
        ema.update(model)
        step += 1
        if step % 100 == 0:
            mean = sum(recent[-100:]) / 100
            print(f"step {step} {elapsed / 60:.1f} min loss {mean:.4f}", flush=True)
            recent = recent[-1000:]
        if time.perf_counter() - last_save > args.checkpoint_minutes * 60.0:
            save_world_model(args.out, ema.model, settings, size=args.size, training=stats())
            last_save = time.perf_counter()
            print(f"checkpoint at step {step} -> {args.out}", flush=True)
    training = stats()
    save_world_model(args.out, ema.model, settings, size=args.size, training=training)
    print(f"trained {training['steps']} steps in {training['minutes']} min -> {args.out}", flush=True)

    # 3. Benchmark the final (EMA) model next to the reference rows.
    refs = reference_sets(args.benchmark_prompts, settings=settings)
    rows = {name: score_clips(clips, settings) for name, clips in refs.items()}
    for label, scale in (("unguided", 1.0), (f"guided {args.guidance_scale:g}", args.guidance_scale)):
        rows[f"{args.size} {label}"] = benchmark_model(
            ema.model, settings, scale, args.inference_steps, args.benchmark_prompts
        )
    print(format_table(rows), flush=True)
    # Keep the model's own rows with the checkpoint (same weights, metadata updated).
    mine = {name: row for name, row in rows.items() if name.startswith(args.size)}
    save_world_model(args.out, ema.model, settings, size=args.size, training=training | {"benchmark": mine})


if __name__ == "__main__":
    main()
