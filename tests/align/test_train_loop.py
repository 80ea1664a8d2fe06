"""The Ray Train loop on a local CPU cluster (fractional CPUs: 2 cores, every worker ≤ 0.5 CPU)."""

import functools
import os
import sys

import pyarrow as pa
import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from ipo_ray.align.batches import PairBatch
from ipo_ray.align.models import Denoiser, FrozenCopyReference, cogvideox_denoiser
from ipo_ray.align.step import AlignmentStep, StepConfig
from ipo_ray.align.train_loop import TrainLoopConfig, fit, load_checkpoint_into
from ipo_ray.data import columns as col
from ipo_ray.data.schemas import schema_for
from ipo_ray.generator.files import save_latents, save_prompt_embeds

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LATENT, TEXT = (2, 4, 8, 8), (8, 8)


def _planted_pairs(directory, n: int, seed: int) -> tuple[pa.Table, PairBatch]:
    """Winners around +pattern, losers around −pattern, one prompt; latents cached as safetensors files."""
    g = torch.Generator().manual_seed(seed)
    pattern = torch.randn(LATENT, generator=torch.Generator().manual_seed(3))
    winner = pattern + 0.5 * torch.randn(n, *LATENT, generator=g)
    loser = -pattern + 0.5 * torch.randn(n, *LATENT, generator=g)
    text = torch.randn(TEXT, generator=torch.Generator().manual_seed(7))
    (directory / "text").mkdir(exist_ok=True)
    save_prompt_embeds(directory / "text" / "p0.safetensors", text, prompt="p0", version="test")
    rows = {name: [] for name in schema_for("pairs").names}
    for i in range(n):
        for side, x in (("w", winner[i]), ("l", loser[i])):
            save_latents(directory / f"{seed}-{i}-{side}.safetensors", x.clone(), version="test", seed=None)
        rows[col.PAIR_ID].append(f"pair-{seed}-{i}")
        rows[col.PROMPT_ID].append("p0")
        rows[col.PROMPT].append("a planted preference")
        rows[col.WINNER_CANDIDATE_ID].append(f"c{i}w")
        rows[col.LOSER_CANDIDATE_ID].append(f"c{i}l")
        rows[col.WINNER_LATENT_PATH].append(str(directory / f"{seed}-{i}-w.safetensors"))
        rows[col.LOSER_LATENT_PATH].append(str(directory / f"{seed}-{i}-l.safetensors"))
        rows[col.WINNER_REWARD].append(1.0)
        rows[col.LOSER_REWARD].append(0.0)
        rows[col.ROUND].append(0)
    table = pa.Table.from_pydict(rows, schema=schema_for("pairs"))
    return table, PairBatch(winner, loser, text.expand(n, *TEXT).contiguous())


def _builders(tiny_cogvideox_config, alphas_cumprod):
    # partials of library callables pickle by reference, so Ray workers can rebuild them
    return (
        functools.partial(CogVideoXTransformer3DModel, **tiny_cogvideox_config),
        functools.partial(cogvideox_denoiser, alphas_cumprod=alphas_cumprod),
    )


def _fit(tmp_path, name, loop, builders, table, workers=2, max_failures=0):
    return fit(
        loop,
        *builders,
        table,
        num_workers=workers,
        cpus_per_worker=0.5,
        storage_path=str(tmp_path / "runs"),
        name=name,
        max_failures=max_failures,
    )


class _CrashOnce:
    """A denoiser forward that raises once, after ``after`` calls (a marker file survives the restart)."""

    def __init__(self, inner, marker: str, after: int) -> None:
        self.inner, self.marker, self.after, self.calls = inner, marker, after, 0

    def __call__(self, model, x_t, timesteps, text_embeds):
        self.calls += 1
        if self.calls > self.after and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError("planted worker failure")
        return self.inner(model, x_t, timesteps, text_embeds)


def _crashing_denoiser(policy, alphas_cumprod, marker: str) -> Denoiser:
    inner = cogvideox_denoiser(policy, alphas_cumprod)
    # 1 worker, no accumulation: 2 forwards (reference, policy) per step; started from the step-4
    # checkpoint, the crash comes in step 6, before the run has reported a checkpoint of its own.
    return Denoiser(_CrashOnce(inner.forward, marker, after=2), inner.parametrisation)


def test_two_workers_learn_a_planted_preference(ray_cluster, tmp_path, tiny_cogvideox_config, alphas_cumprod):
    builders = _builders(tiny_cogvideox_config, alphas_cumprod)
    # 64 pairs: 16 micro-batches per worker and epoch, so few epochs (each starts a Ray Data execution).
    table, _ = _planted_pairs(tmp_path, 64, seed=0)
    loop = TrainLoopConfig(
        StepConfig("dpo", lambda_preferred=0.0),
        str(tmp_path / "text"),
        max_steps=24,
        lr=1e-3,
        micro_batch=2,
        grad_accum=2,
        checkpoint_every=12,
    )
    result = _fit(tmp_path, "planted", loop, builders, table)
    assert result.error is None and result.metrics["step"] == 24
    torch.manual_seed(0)
    reference, trained = builders[0](), builders[0]()
    assert load_checkpoint_into(trained, result.checkpoint)["step"] == 24
    step = AlignmentStep(trained, builders[1](trained), FrozenCopyReference(reference), StepConfig("dpo"))
    _, held_out = _planted_pairs(tmp_path, 32, seed=99)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        accs = [
            step.loss(held_out, step.draw_noise(held_out, g))[1]["rewards/implicit_acc"] for _ in range(3)
        ]
    assert torch.stack(accs).mean() > 0.75


def test_resumed_run_ends_where_an_uninterrupted_one_does(
    ray_cluster, tmp_path, tiny_cogvideox_config, alphas_cumprod
):
    builders = _builders(tiny_cogvideox_config, alphas_cumprod)
    table, _ = _planted_pairs(tmp_path, 12, seed=1)
    common = dict(
        step=StepConfig("dpo", beta=50.0), text_embeds_dir=str(tmp_path / "text"), lr=1e-3, micro_batch=2
    )
    # 12 pairs / 2 per micro-batch = 6 micro-batches per epoch: resuming at step 4 lands mid-epoch and
    # the 8 steps cross an epoch boundary. The uninterrupted run's step-4 checkpoint is the "kill" point.
    full = _fit(
        tmp_path,
        "full",
        TrainLoopConfig(max_steps=8, checkpoint_every=4, **common),
        builders,
        table,
        workers=1,
    )
    at_4 = next(c for c, m in full.best_checkpoints if m["step"] == 4)
    # One run checks both ways back: it starts from the step-4 checkpoint (resume_from), its worker
    # dies in step 6 and FailureConfig restarts it from that same checkpoint (none reported since).
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the crash helper is test-only code
    crashing = (
        builders[0],
        functools.partial(
            _crashing_denoiser, alphas_cumprod=alphas_cumprod, marker=str(tmp_path / "crashed")
        ),
    )
    resumed = _fit(
        tmp_path,
        "resumed",
        TrainLoopConfig(max_steps=8, checkpoint_every=4, resume_from=at_4.path, **common),
        crashing,
        table,
        workers=1,
        max_failures=1,
    )
    assert (tmp_path / "crashed").exists() and full.metrics["resumed_from_step"] == 0
    assert resumed.metrics["step"] == full.metrics["step"] == 8 and resumed.metrics["resumed_from_step"] == 4
    assert resumed.metrics["train/loss"] == pytest.approx(full.metrics["train/loss"], rel=1e-5)
    a, b = builders[0](), builders[0]()
    load_checkpoint_into(a, full.checkpoint), load_checkpoint_into(b, resumed.checkpoint)
    for pa_, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa_, pb)
