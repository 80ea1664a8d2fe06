"""Invariant through Ray Train: 1 worker × 2 accumulated micro-batches ≈ 2 workers × 1 micro-batch.

KTO is the demanding case: its reference point Q must be the mean over the whole global batch (all
micro-batches, all workers), and the noise of a sample must not depend on where it lands; with a
per-micro-batch Q or per-(rank, micro-batch) noise the two runs would differ. So is its λ1 term: the
mean over the global batch's desirable samples (3 of 4 here, so micro-batches hold 2 and 1), for which
the loop must count across micro-batches as the step counts across workers. Real videos of the λ2
term ride along: the clips and noise a micro-batch draws must depend on its slot in the global batch,
not on the worker it runs on.
"""

import functools
import sys

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from ipo_ray.align.models import cogvideox_denoiser
from ipo_ray.align.step import StepConfig
from ipo_ray.align.train_loop import TrainLoopConfig, fit, load_checkpoint_into

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _loud(config: dict, scale: float = 10.0) -> CogVideoXTransformer3DModel:
    """A tiny model whose outputs are scaled up: a reference much worse than the policy, so Q > 0."""
    model = CogVideoXTransformer3DModel(**config)
    with torch.no_grad():
        model.proj_out.weight.mul_(scale)
    return model


def test_one_worker_two_micro_batches_equals_two_workers_one(
    ray_cluster, tmp_path, tiny_cogvideox_config, alphas_cumprod, planted_samples, real_clips
) -> None:
    table = planted_samples(tmp_path, 4, desirable=(True, True, True, False))
    real = real_clips(tmp_path, 5)
    build = functools.partial(CogVideoXTransformer3DModel, **tiny_cogvideox_config)
    # A reference with other, worse weights (as IPO's base-model reference), so Q is not clamped to 0.
    pytest.importorskip("ray.cloudpickle").register_pickle_by_value(sys.modules[__name__])  # test-only helper
    reference = functools.partial(_loud, tiny_cogvideox_config)
    denoiser = functools.partial(cogvideox_denoiser, alphas_cumprod=alphas_cumprod)
    step = StepConfig("kto", beta=50.0, lambda_preferred=0.5, lambda_real=0.5)
    runs = {}
    for workers, micro, accum in ((1, 2, 2), (2, 2, 1)):
        loop = TrainLoopConfig(
            step,
            max_steps=1,
            lr=1e-5,
            micro_batch=micro,
            grad_accum=accum,
            checkpoint_every=1,
            real_batch_size=2,
        )
        runs[workers] = fit(
            loop,
            build,
            denoiser,
            table,
            num_workers=workers,
            cpus_per_worker=0.5,
            storage_path=str(tmp_path / "runs"),
            name=f"accum-{workers}",
            build_reference=reference,
            real=real,
        )
    one, two = runs[1].metrics, runs[2].metrics
    assert one["kto/reference_point"] > 0  # Q is exercised, not clamped to 0
    assert one["train/nll_real"] > 0 and one["train/nll_preferred"] > 0  # λ2 and λ1 are in both runs
    keys = ("train/loss", "kto/reference_point", "rewards/implicit_acc", "grad_norm")
    for key in (*keys, "train/nll_real", "train/nll_preferred"):
        assert one[key] == pytest.approx(two[key], rel=1e-5, abs=1e-7), key
    a, b = build(), build()
    load_checkpoint_into(a, runs[1].checkpoint), load_checkpoint_into(b, runs[2].checkpoint)
    for pa_, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa_, pb, rtol=0, atol=2e-7)  # ≈ 2% of one AdamW step (lr 1e-5)
