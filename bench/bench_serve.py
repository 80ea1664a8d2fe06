"""The critic served over HTTP: throughput with 16 concurrent clients vs 1, and the served path vs bare vLLM.

Issue 5's benchmarks:

(a) requests/s with 16 concurrent HTTP clients against 1 client (report the ratio): the app's
    engine thread lets requests that arrive while the engine is busy join its running batch;
(b) judgments/s (one video × one dimension × n samples) through the whole served path (HTTP,
    upload-free path input, video decoding and frame sampling, prompt building, vLLM, parsing,
    voting) against the bare vLLM engine given the same prepared inputs in one `generate` call, in
    this process, asked for the same outputs (the first token's log-probabilities too under
    ``critic.vote=first_token``): goal ≥ 0.8.

Every request names a different clip, so vLLM's prefix cache never makes a repeated video free.
Both sides use the same critic, n, answer length and engine settings; the app runs in a Ray
replica (0.5 CPU) on a local Ray, the bare engine in this process, never at the same time.

    OMP_NUM_THREADS=1 RAY_AUTH_MODE=disabled .venv/bin/python bench/bench_serve.py [--critic DIR]
"""

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

PROMPT = "A red square moves slowly to the right across a dark blue background."


def _clip(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = np.full((16, 16, 16, 3), rng.integers(0, 80, 3), dtype=np.uint8)
    y, colour = rng.integers(2, 10), rng.integers(100, 255, 3)
    for t in range(16):
        frames[t, y : y + 4, t % 12 : t % 12 + 4] = colour
    return frames


def _serve_requests(url: str, names: list[str], clients: int, n: int) -> float:
    """Seconds to score every clip with `clients` threads each holding one connection."""
    todo = iter(names)
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                with lock:
                    name = next(todo, None)
                if name is None:
                    return
                response = http.post("/v1/score", json={"prompt": PROMPT, "video_path": name, "samples": n})
                if response.status_code != 200:
                    failures.append(response.text[:200])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--critic", help="critic folder; default: build a tiny random one")
    # Defaults are the critic section's: n = critic.samples, answers up to critic.max_new_tokens.
    parser.add_argument("--clips", type=int, default=96, help="clips per served/bare measurement")
    parser.add_argument("--single", type=int, default=8, help="requests for the 1-client run")
    parser.add_argument("--n", type=int, default=8, help="samples per judgment")
    parser.add_argument("--tokens", type=int, default=48, help="answer length cap")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--vote", choices=("first_token", "samples"), default=None, help="critic.vote (default: config's)"
    )
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from ipo_ray.config import load_config
    from ipo_ray.critic.model import build_critic
    from ipo_ray.critic.serve.launch import start
    from ipo_ray.data.video import read_frames, write_mp4
    from ipo_ray.local_ray import free_port
    from ipo_ray.vocab import DIMENSIONS

    scratch = tempfile.TemporaryDirectory(prefix="bench-serve-")
    root = Path(scratch.name) / "videos"
    critic = args.critic or str(build_critic(Path(scratch.name) / "critic", [PROMPT]))
    # Distinct clips for every measurement (repeats included): a clip seen before hits the prefix cache.
    total = (args.single + 2 * args.clips) * (args.repeats + 1)
    names = [f"c{i}.mp4" for i in range(total)]
    for i, name in enumerate(names):
        write_mp4(root / name, _clip(i), fps=8)
    batches = iter(names)

    def take(count: int) -> list[str]:
        return [next(batches) for _ in range(count)]

    # 1. The served path.
    cfg = load_config(
        None,
        [
            f"critic.path={critic}",
            f"critic.samples={args.n}",
            f"critic.max_new_tokens={args.tokens}",
            f"serve.allowed_root={root}",
            f"serve.port={free_port()}",
            *([f"critic.vote={args.vote}"] if args.vote else []),
        ],
    )
    url = start(cfg, num_cpus=2)

    # 2. The bare engine, in this process, same critic and settings. Its inputs are prepared before
    # the clock starts: frames decoded and sampled, prompts built.
    from ipo_ray.critic.judge import FIRST_TOKEN_TOP, CriticRequest, SamplingConfig
    from ipo_ray.critic.templates import pointwise_question
    from ipo_ray.critic.vllm_backend import VllmBackend

    backend = VllmBackend(
        critic, SamplingConfig(seed=0, max_new_tokens=args.tokens), block_size=cfg.critic.block_size
    )
    questions = [pointwise_question(PROMPT, d) for d in DIMENSIONS]

    def bare_run(clips: list[str]) -> float:
        frames = [read_frames(root / name, cfg.video.num_frames) for name in clips]
        prompts = [backend.prompt(CriticRequest((f,), q)) for f in frames for q in questions]
        params = backend.sampling_params(args.n)
        start_s = time.perf_counter()
        texts = backend.run(prompts, params)
        if cfg.critic.vote == "first_token":  # the engine's work as the app asks for it: the read too
            backend.engine.generate(prompts, backend.read_params(FIRST_TOKEN_TOP), use_tqdm=False)
        assert all(len(t) == args.n for t in texts)
        return len(prompts) / (time.perf_counter() - start_s)

    # 3. Warm-ups, then interleaved repeats: the machine is shared, so a neighbour's load hits all
    # three alike; only one side computes at a time (the app's engine thread idles between runs).
    _serve_requests(url, take(args.single), 1, args.n)
    bare_run(take(16))
    one, sixteen, bare = [], [], []
    for _ in range(args.repeats):
        one.append(args.single / _serve_requests(url, take(args.single), 1, args.n))
        sixteen.append(args.clips / _serve_requests(url, take(args.clips), 16, args.n))
        bare.append(bare_run(take(args.clips)))

    print(
        "per repeat, requests/s 1 client:",
        [f"{x:.2f}" for x in one],
        " 16 clients:",
        [f"{x:.2f}" for x in sixteen],
    )
    print("per repeat, bare judgments/s:", [f"{x:.2f}" for x in bare])
    s1, s16, br = (statistics.median(x) for x in (one, sixteen, bare))
    sv = s16 * len(DIMENSIONS)  # one request = one judgment per dimension
    print(f"requests/s, 1 client: {s1:.2f}   16 clients: {s16:.2f}   ratio 16/1: {s16 / s1:.2f}")
    print(
        f"judgments/s (n={args.n}, {args.tokens} tokens, critic.vote={cfg.critic.vote}), served: {sv:.2f}   "
        f"bare vLLM: {br:.2f}   "
        f"ratio: {sv / br:.2f} (goal ≥ 0.8)"
    )


if __name__ == "__main__":
    main()
