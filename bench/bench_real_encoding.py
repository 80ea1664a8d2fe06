"""Benchmark of caption embedding for the real videos of the λ2 term: batched against one at a time.

Prints, from one timed run of each (after one untimed warm-up of both), the seconds to embed 64
distinct world prompts with the shipped world generator's text encoder (CPU, fp32) one prompt per
call (the old `encode_real_videos` path) and in batches of 32 (`types.encode_prompts`, the path it
now takes), and the batched/one-at-a-time time ratio (goal < 1). Both must give the same embeddings
(checked). The text encoder is small, so the ratio mostly shows the per-call overhead saved.

Launch: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_real_encoding.py`` (a few seconds).
"""

import time

import torch

from ipo_ray.generator import WorldGenerator
from ipo_ray.generator.real import TEXT_BATCH_SIZE
from ipo_ray.generator.types import encode_prompts
from ipo_ray.world.prompts import sample_prompts

NUM_CAPTIONS = 64


def one_at_a_time(generator: WorldGenerator, captions: list[str]) -> torch.Tensor:
    return torch.stack([generator.encode_prompt(text) for text in captions])


def batched(generator: WorldGenerator, captions: list[str]) -> torch.Tensor:
    chunks = [captions[i : i + TEXT_BATCH_SIZE] for i in range(0, len(captions), TEXT_BATCH_SIZE)]
    return torch.cat([encode_prompts(generator, chunk) for chunk in chunks])


def timed(fn, *args) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    generator = WorldGenerator()
    captions = list(dict.fromkeys(text for text, _ in sample_prompts(4 * NUM_CAPTIONS, seed=7)))[
        :NUM_CAPTIONS
    ]
    assert len(captions) == NUM_CAPTIONS
    one_at_a_time(generator, captions[:4]), batched(generator, captions[:4])  # warm-up
    single_s, single = timed(one_at_a_time, generator, captions)
    batch_s, many = timed(batched, generator, captions)
    torch.testing.assert_close(many, single, rtol=1e-5, atol=1e-5)
    print(f"{NUM_CAPTIONS} captions, world generator text encoder, {torch.get_num_threads()} thread(s)")
    print(f"  one at a time:      {single_s:.3f} s")
    print(f"  batches of {TEXT_BATCH_SIZE}:      {batch_s:.3f} s")
    print(f"  batched / one at a time: {batch_s / single_s:.2f} (goal < 1)")


if __name__ == "__main__":
    main()
