"""Benchmark of the Ray Train shell: samples/s of the loop with one worker / the plain step in a loop.

Both read the same cached latents from safetensors files (``table_rows.load_pairs``), run the same DPO step
and AdamW update on the small CogVideoX of ``bench_align``; the Ray side adds Ray Data, the Train
worker and one ``ray.train.report`` per step (its throughput counts from the end of its first step).
Goal: ratio ≥ 0.9 (the framework costs at most 10%).

Launch: ``OMP_NUM_THREADS=1 RAY_AUTH_MODE=disabled .venv/bin/python bench/bench_align_ray.py`` (a few
minutes on 2 cores).
"""

import functools
import tempfile
import time
from pathlib import Path

import bench_align
import pyarrow as pa
import ray
import ray.cloudpickle
import torch
from bench_align import LATENT, TEXT, small_cogvideox
from diffusers import CogVideoXDDIMScheduler

from ipo_ray.align.models import REFERENCES, cogvideox_denoiser
from ipo_ray.align.step import AlignmentStep, StepConfig
from ipo_ray.align.table_rows import load_pairs
from ipo_ray.align.train_loop import TrainLoopConfig, fit
from ipo_ray.data.schemas import schema_for
from ipo_ray.generator.files import save_latents, save_prompt_embeds

PAIRS, MICRO, STEPS = 96, 4, 24


def _write_pairs(directory: Path) -> pa.Table:
    g = torch.Generator().manual_seed(0)
    (directory / "text").mkdir()
    save_prompt_embeds(
        directory / "text" / "p0.safetensors", torch.randn(TEXT, generator=g), prompt="p0", version="test"
    )
    rows = {name: [] for name in schema_for("pairs").names}
    for i in range(PAIRS):
        for side in ("w", "l"):
            save_latents(
                directory / f"{i}{side}.safetensors",
                torch.randn(LATENT, generator=g),
                version="test",
                seed=None,
            )
        values = (f"pair-{i}", "p0", "bench", f"{i}w", f"{i}l", str(directory / f"{i}w.safetensors"))
        values += (str(directory / f"{i}l.safetensors"), 1.0, 0.0, 0)
        for name, value in zip(schema_for("pairs").names, values, strict=True):
            rows[name].append(value)
    return pa.Table.from_pydict(rows, schema=schema_for("pairs"))


def plain_samples_per_s(loop: TrainLoopConfig, table: pa.Table, alphas: torch.Tensor) -> float:
    torch.manual_seed(loop.seed)
    policy = small_cogvideox()
    step = AlignmentStep(
        policy, cogvideox_denoiser(policy, alphas), REFERENCES["frozen_copy"](policy), loop.step
    )
    opt = torch.optim.AdamW(policy.parameters(), lr=loop.lr)
    rows = table.to_pydict()
    t_first = None
    for i in range(STEPS):
        chunk = {k: v[i * MICRO : (i + 1) * MICRO] for k, v in rows.items()}
        batch = load_pairs(chunk, loop.text_embeds_dir)
        loss, _ = step.loss(batch, step.draw_noise(batch, torch.Generator().manual_seed(i)), step=i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), loop.max_grad_norm)
        opt.step()
        if t_first is None:
            t_first = time.perf_counter()
    return 2 * MICRO * (STEPS - 1) / (time.perf_counter() - t_first)


def main() -> None:
    torch.set_num_threads(1)
    alphas = CogVideoXDDIMScheduler(rescale_betas_zero_snr=True).alphas_cumprod
    with tempfile.TemporaryDirectory() as tmp:
        table = _write_pairs(Path(tmp))
        loop = TrainLoopConfig(
            StepConfig("dpo"),
            str(Path(tmp) / "text"),
            max_steps=STEPS,
            micro_batch=MICRO,
            checkpoint_every=STEPS,
        )
        plain = plain_samples_per_s(loop, table, alphas)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.cloudpickle.register_pickle_by_value(bench_align)  # workers cannot import bench/ scripts
        try:
            result = fit(
                loop,
                small_cogvideox,
                functools.partial(cogvideox_denoiser, alphas_cumprod=alphas),
                table,
                num_workers=1,
                cpus_per_worker=1.0,
                storage_path=str(Path(tmp) / "runs"),
                name="bench",
            )
        finally:
            ray.shutdown()
    on_ray = result.metrics["samples_per_s"]
    print(f"plain step loop {plain:.1f} samples/s; Ray Train, 1 worker {on_ray:.1f} samples/s")
    print(f"Ray / plain = {on_ray / plain:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
