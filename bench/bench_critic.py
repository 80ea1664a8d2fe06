"""Cost of one judgement with n = 8 sampled answers against n = 1, through the vLLM backend.

Issue 5's goal: ≤ 1.3×. One request with ``SamplingParams(n=8)`` prefills the video prompt once
and decodes 8 continuations from the shared KV cache; the naive alternative (8 copies of the prompt)
is printed beside it. Every sample decodes exactly ``--tokens`` tokens (``ignore_eos``), so a random
model's early stops cannot flatter the ratio. Times are medians over ``--repeats`` interleaved runs after one
warm-up, for ``--requests`` questions at once (default one: one judgement) on 16 frames of
``--size``² pixels (default 16: the world's clips).

Run (CPU, a tiny random critic built on the fly; or ``--critic DIR`` for a trained one)::

    VLLM_CPU_KVCACHE_SPACE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 OMP_NUM_THREADS=1 \
        python bench/bench_critic.py
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def _clip(seed: int, side: int) -> np.ndarray:
    """16 frames of side × side: a square of a random colour crossing a dark background."""
    rng = np.random.default_rng(seed)
    frames = np.full((16, side, side, 3), (15, 20, 70), dtype=np.uint8)
    square = side // 4
    y, colour = rng.integers(0, side - square), rng.integers(100, 255, 3)
    for t in range(16):
        x = t * (side - square) // 15
        frames[t, y : y + square, x : x + square] = colour
    return frames


def _seconds(run) -> float:  # noqa: ANN001 - a zero-argument callable
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--critic", help="critic folder; default: build a tiny random one")
    # One judgement is the unit; more requests per batch make n = 1 already a decode batch,
    # so the ratio then measures the CPU's compute per extra sequence instead of prefix sharing.
    parser.add_argument("--requests", type=int, default=1, help="questions per batch")
    parser.add_argument("--size", type=int, default=16, help="frame side in pixels (16: the world's clips)")
    parser.add_argument("--n", type=int, default=8, help="samples per question")
    parser.add_argument("--tokens", type=int, default=32, help="tokens decoded per sample")
    parser.add_argument("--repeats", type=int, default=5)
    # vLLM shares a prompt among the n samples through its prefix cache, which holds full blocks
    # only: with CPU's default of 128 tokens a ~110-token critic prompt fills none, so every sample
    # prefills again. 32 is the smallest block the CPU attention backend accepts.
    parser.add_argument("--block-size", type=int, default=32, help="KV cache block size in tokens")
    args = parser.parse_args()

    from ipo_ray.critic.judge import CriticRequest, SamplingConfig
    from ipo_ray.critic.model import build_critic
    from ipo_ray.critic.templates import pointwise_question
    from ipo_ray.critic.vllm_backend import VllmBackend

    scratch = tempfile.TemporaryDirectory(prefix="bench-critic-")  # removed when the process exits
    critic = args.critic or build_critic(scratch.name, ["A red square moves right."])
    backend = VllmBackend(
        critic, SamplingConfig(seed=0, max_new_tokens=args.tokens), block_size=args.block_size
    )
    question = pointwise_question("A red square moves right.", "motion_smoothness")
    fresh = iter(range(10**9))

    def generate(n: int, copies: int = 1) -> None:
        # New clips every call, as in service: a clip seen before would hit the prefix cache and
        # make its prefill free.
        clips = [_clip(next(fresh), args.size) for _ in range(args.requests)]
        prompts = [backend.prompt(CriticRequest((clip,), question)) for clip in clips]
        texts = backend.run(
            [p for p in prompts for _ in range(copies)], backend.sampling_params(n, ignore_eos=True)
        )
        assert all(len(t) == n for t in texts), "vLLM returned fewer samples than asked"

    # Interleaved: each repeat times all three back to back, so a neighbour's load (2 shared cores)
    # hits them alike; ratios are medians of per-repeat ratios.
    runs = {
        "one": lambda: generate(1),
        "shared": lambda: generate(args.n),
        "copies": lambda: generate(1, args.n),
    }
    for run in runs.values():
        run()  # warm-up: first calls allocate and fill caches
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(_seconds(run))
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    ratio = {
        name: statistics.median(a / b for a, b in zip(t, times["one"], strict=True))
        for name, t in times.items()
    }
    print(
        f"critic/bench: {args.requests} requests, {args.tokens} tokens/sample, block size {args.block_size}, "
        f"{args.repeats} interleaved repeats"
    )
    print(f"  n=1                      {ms['one']:8.1f} ms")
    print(
        f"  n={args.n} in one request     {ms['shared']:8.1f} ms  ratio {ratio['shared']:.2f}x (goal <= 1.3x)"
    )
    print(f"  n={args.n} as prompt copies   {ms['copies']:8.1f} ms  ratio {ratio['copies']:.2f}x")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
