"""Benchmark: the cost of KTO's global reference point on the world generator's transformer.

The Ray loop computes KTO's Q over the whole accumulated global batch: a gradient-free pass over the
step's micro-batches (one policy forward each; the reference errors are kept and reused) before the
pass with gradients. This prints, from one run in one process (plain torch, fp32, CPU), the time of
one optimizer step with the global Q against the same step with Q estimated per micro-batch (what
``diffusion_kto_loss`` does alone), on the shipped small world transformer (3.9M parameters,
clips 3×4×16×16), a global batch of ``micro × accum`` samples. Expected ≈ 5/4 (forward-backward of
the policy ≈ 3 forwards, reference 1, extra policy forward 1).

Launch: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_align_world.py`` (about a minute on one core).
"""

import argparse
import statistics
import time

import torch

from ipo_ray.align import losses as L
from ipo_ray.align.backends import builders
from ipo_ray.align.batches import SampleBatch
from ipo_ray.align.models import FrozenCopyReference
from ipo_ray.align.step import AlignmentStep, StepConfig
from ipo_ray.generator.world_model import DEFAULT_CHECKPOINT


def _step_seconds(step: AlignmentStep, opt, micro_batches, global_q: bool) -> float:
    start = time.perf_counter()
    q, refs = None, [None] * len(micro_batches)
    if global_q:
        rewards, refs = zip(*(step.kto_rewards(b, d) for b, d in micro_batches), strict=True)
        q = L.kto_reference_point(torch.cat(rewards))
    for (batch, draw), ref in zip(micro_batches, refs, strict=True):
        loss, _ = step.loss(batch, draw, reference_point=q, ref_err=ref)
        (loss / len(micro_batches)).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", type=int, default=4, help="samples per micro-batch")
    parser.add_argument("--accum", type=int, default=4, help="micro-batches per optimizer step")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant (after 1 warm-up)")
    args = parser.parse_args()
    build, make_denoiser = builders("world", DEFAULT_CHECKPOINT)
    policy = build()
    step = AlignmentStep(policy, make_denoiser(policy), FrozenCopyReference(policy), StepConfig("kto"))
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-5)
    g = torch.Generator().manual_seed(0)
    micro_batches = []
    for m in range(args.accum):
        batch = SampleBatch(
            torch.randn(args.micro, 3, 4, 16, 16, generator=g),
            torch.randn(args.micro, 32, 128, generator=g),
            desirable=torch.arange(args.micro) % 2 == 0,
            ids=tuple(f"{m}-{i}" for i in range(args.micro)),
        )
        micro_batches.append(
            (batch, step.draw_noise_per_sample(batch, list(range(m * 100, m * 100 + args.micro))))
        )
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats + 1):  # interleaved, so load on a shared machine hits both alike
        for global_q in (False, True):
            times[global_q].append(_step_seconds(step, opt, micro_batches, global_q))
    per_micro, global_ = (statistics.median(times[k][1:]) for k in (False, True))
    n = args.micro * args.accum
    print(f"global batch {n} ({args.micro} × {args.accum}), torch threads {torch.get_num_threads()}")
    print(f"KTO step, Q per micro-batch : {per_micro * 1000:8.1f} ms")
    print(f"KTO step, Q over global batch: {global_ * 1000:8.1f} ms")
    print(f"ratio global / per-micro-batch: {global_ / per_micro:.2f} (expected ≈ 1.25)")


if __name__ == "__main__":
    main()
