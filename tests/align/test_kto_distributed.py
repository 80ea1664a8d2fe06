"""KTO's reference point and λ1 term are means over the GLOBAL batch: all-reduced across 2 gloo processes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ipo_ray.align.batches import SampleBatch
from ipo_ray.align.models import REFERENCES, cogvideox_denoiser
from ipo_ray.align.step import AlignmentStep, StepConfig

from .conftest import tiny_cogvideox

WORKER = textwrap.dedent(
    """
    import json, sys, torch, torch.distributed as dist
    from ipo_ray.align.losses import diffusion_kto_loss
    rank, init = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    # Rank 0: rewards +3e-4 on 3 samples; rank 1: −1e-4 on 1 sample → global mean 2e-4 (per-rank means
    # would average to 1e-4: the sum/count reduction is what makes Q the global-batch mean).
    n, r = (3, 3e-4) if rank == 0 else (1, -1e-4)
    ref = torch.full((n,), 0.1, dtype=torch.float64)
    _, stats = diffusion_kto_loss(ref - r, ref, torch.ones(n, dtype=torch.bool))
    print(json.dumps(float(stats["reference_point"])))
    dist.destroy_process_group()
    """
)


@pytest.mark.timeout(120)
def test_reference_point_is_all_reduced_over_workers(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = f"file://{tmp_path / 'rendezvous'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), init], stdout=subprocess.PIPE, text=True, env=env
        )
        for rank in range(2)
    ]
    outs = [p.communicate(timeout=100)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    q = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    assert q[0] == pytest.approx(2e-4, rel=1e-9) and q[1] == pytest.approx(2e-4, rel=1e-9)


NLL_WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    sys.path.insert(0, sys.argv[4])  # tests/align: its conftest builds the tiny models
    from conftest import cogvideox_alphas_cumprod, tiny_cogvideox
    from ipo_ray.align.batches import SampleBatch
    from ipo_ray.align.models import REFERENCES, cogvideox_denoiser
    from ipo_ray.align.step import AlignmentStep, StepConfig
    rank, init, data = int(sys.argv[1]), sys.argv[2], torch.load(sys.argv[3])
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    part = slice(2 * rank, 2 * rank + 2)  # rank 0: 2 desirable samples, rank 1: 1
    batch = SampleBatch(data["latents"][part], data["text"][part], desirable=data["desirable"][part])
    policy = tiny_cogvideox(0)
    cfg = StepConfig("kto", beta=50.0, lambda_preferred=1.0, lambda_real=0.0)
    step = AlignmentStep(
        policy, cogvideox_denoiser(policy, cogvideox_alphas_cumprod()),
        REFERENCES["frozen_copy"](tiny_cogvideox(1)), cfg,
    )
    # No reference_point and no divisor: the step all-reduces Q and the desirable count itself.
    step.loss(batch, step.draw_noise_per_sample(batch, data["seeds"][part]))[0].backward()
    grad = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
    dist.all_reduce(grad)  # as DDP: the mean of the workers' gradients
    if rank == 0:
        torch.save(grad / 2, sys.argv[5])
    dist.destroy_process_group()
    """
)


@pytest.mark.timeout(240)
def test_kto_nll_term_over_two_workers_is_the_global_mean(tmp_path, shapes, alphas_cumprod):
    """2 workers holding 2 and 1 desirable samples: the mean of their gradients = one big batch's."""
    g = torch.Generator().manual_seed(0)
    data = {
        "latents": torch.randn(4, *shapes["cog_latent"], generator=g),
        "text": torch.randn(4, *shapes["cog_text"], generator=g),
        "desirable": torch.tensor([True, True, True, False]),
        "seeds": [11, 12, 13, 14],
    }
    torch.save(data, tmp_path / "data.pt")
    script = tmp_path / "worker.py"
    script.write_text(NLL_WORKER)
    args = [str(tmp_path / "data.pt"), str(Path(__file__).parent), str(tmp_path / "grad.pt")]
    init = f"file://{tmp_path / 'rendezvous'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(rank), init, *args], env=env) for rank in range(2)
    ]
    assert all(p.wait(timeout=200) == 0 for p in procs)

    policy = tiny_cogvideox(0)
    cfg = StepConfig("kto", beta=50.0, lambda_preferred=1.0, lambda_real=0.0)
    step = AlignmentStep(
        policy, cogvideox_denoiser(policy, alphas_cumprod), REFERENCES["frozen_copy"](tiny_cogvideox(1)), cfg
    )
    batch = SampleBatch(data["latents"], data["text"], desirable=data["desirable"])
    step.loss(batch, step.draw_noise_per_sample(batch, data["seeds"]))[0].backward()
    big = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
    torch.testing.assert_close(torch.load(tmp_path / "grad.pt"), big, rtol=1e-4, atol=1e-7)
