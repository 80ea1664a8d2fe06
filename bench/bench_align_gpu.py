"""The Diffusion-DPO step at full size: seconds per step and MFU against the measured bf16 peak.

Issue 4's GPU benchmark: a random-initialised CogVideoX-2B-shaped transformer (diffusers' default
config: 30 layers, 30 heads × 64, T5-XXL width 4096, learned positions) at the production latent shape
(13 latent frames × 16 channels × 60 × 90, i.e. 49 frames of 480 × 720; 226 text tokens), trained as
the Ray Train loop trains it on a GPU: fp32 master weights, bf16 autocast of the forwards, AdamW,
a frozen-copy reference, gradient clipping, optionally gradient checkpointing. Goal: MFU ≥ 40%.

- **Model FLOPs** of one step: ``torch.utils.flop_counter.FlopCounterMode`` counts one policy forward
  of one sample at this shape (matmuls and attention); a DPO step over P pairs runs the policy forward
  and backward (≈ 3 forwards) and the reference forward on 2P samples: 8P forwards in all. Gradient
  checkpointing's recomputed forward is hardware work, not model work, and is not counted (MFU, not HFU).
- **Peak**: the best of a few large bf16 matmuls on this device (``--peak-size``), not the datasheet.
- **Step time**: median of ``--steps`` optimizer steps after ``--warmup``, CUDA-synchronised.

On a GPU machine (writes nothing; ~7 GB of fp32 weights, plus optimizer state and the reference copy)::

    python bench/bench_align_gpu.py                       # full size, gradient checkpointing on
    python bench/bench_align_gpu.py --no-checkpointing    # keeps all 30 blocks' activations

It needs torch, diffusers, transformers and peft only (not Ray, vLLM or pyarrow): on a bare GPU
machine, ``pip install diffusers`` and run it from the checkout with ``PYTHONPATH=.``.

On a CPU it runs in fp32 at a size given on the command line, as a smoke test of the script itself:
``python bench/bench_align_gpu.py --layers 1 --latent 2,16,8,8 --text-len 16 --peak-size 512``.
"""

import argparse
import statistics
import time

import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
from torch.utils.flop_counter import FlopCounterMode

from ipo_ray.align.batches import PairBatch
from ipo_ray.align.models import REFERENCES, cogvideox_denoiser, enable_gradient_checkpointing
from ipo_ray.align.step import AlignmentStep, StepConfig

FULL_LATENT = (13, 16, 60, 90)  # (F, C, H, W): 49 frames of 480 × 720 through CogVideoX's VAE
FULL_TEXT_LEN = 226  # CogVideoX's max_text_seq_length


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measured_peak_flops(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """The best FLOP/s of ``repeats`` square matmuls of ``size`` in ``dtype`` on ``device``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):  # warm-up: kernels chosen, clocks up
        a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def build_policy(layers: int, latent: tuple[int, ...], text_len: int) -> CogVideoXTransformer3DModel:
    """CogVideoX-2B's config (diffusers' defaults) with the depth and sample size given."""
    frames, channels, height, width = latent
    torch.manual_seed(0)
    return CogVideoXTransformer3DModel(
        num_layers=layers,
        in_channels=channels,
        out_channels=channels,
        sample_frames=4 * (frames - 1) + 1,
        sample_height=height,
        sample_width=width,
        max_text_seq_length=text_len,
    )


def forward_flops(step: AlignmentStep, batch: PairBatch, autocast) -> int:  # noqa: ANN001 - a context
    """Model FLOPs of one policy forward of one sample at the batch's shape."""
    one = PairBatch(batch.winner[:1], batch.loser[:1], batch.text_embeds[:1])
    draw = step.draw_noise(one, torch.Generator().manual_seed(0))
    x_t, _ = step.denoiser.parametrisation.noisy_and_target(one.winner, draw.noise, draw.timesteps)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), autocast, counter:
        step.denoiser.forward(step.policy, x_t, draw.timesteps.to(x_t.device), one.text_embeds)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30, help="transformer blocks (CogVideoX-2B: 30)")
    parser.add_argument("--latent", default=",".join(map(str, FULL_LATENT)), help="F,C,H,W of one sample")
    parser.add_argument("--text-len", type=int, default=FULL_TEXT_LEN, help="text tokens")
    parser.add_argument("--pairs", type=int, default=1, help="pairs per step (micro-batch)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-size", type=int, default=8192, help="matmul side for the peak")
    parser.add_argument("--no-checkpointing", action="store_true", help="keep every block's activations")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    compute = torch.bfloat16 if on_gpu else torch.float32  # the trainer: bf16 on GPU, fp32 on CPU
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu)
    latent = tuple(int(x) for x in args.latent.split(","))
    if len(latent) != 4:
        parser.error(f"--latent takes F,C,H,W, got {args.latent!r}")

    policy = build_policy(args.layers, latent, args.text_len).to(device)
    reference = REFERENCES["frozen_copy"](policy)
    if not args.no_checkpointing:
        enable_gradient_checkpointing(policy)
    alphas = CogVideoXDDIMScheduler(rescale_betas_zero_snr=True, snr_shift_scale=3.0).alphas_cumprod
    step = AlignmentStep(policy, cogvideox_denoiser(policy, alphas), reference, StepConfig("dpo"))
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-5)
    g = torch.Generator(device).manual_seed(0)
    text_dim = policy.config.text_embed_dim
    batch = PairBatch(
        torch.randn(args.pairs, *latent, generator=g, device=device),
        torch.randn(args.pairs, *latent, generator=g, device=device),
        torch.randn(args.pairs, args.text_len, text_dim, generator=g, device=device),
    )

    def train_step() -> float:
        _sync(device)
        start = time.perf_counter()
        with autocast:
            loss, _ = step.loss(batch, step.draw_noise(batch, torch.Generator().manual_seed(1)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        return time.perf_counter() - start

    flops_fwd = forward_flops(step, batch, autocast)
    step_flops = 8 * args.pairs * flops_fwd  # 2P samples × (forward + backward ≈ 3, reference 1)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    times = [train_step() for _ in range(args.warmup + args.steps)][args.warmup :]
    seconds = statistics.median(times)
    peak = measured_peak_flops(device, compute, args.peak_size)

    params = sum(p.numel() for p in policy.parameters())
    print(
        f"model: CogVideoX-2B-shaped, {args.layers} layers, {params / 1e9:.2f} B params; latent {latent}, "
        f"{args.text_len} text tokens; {args.pairs} pair(s) per step; device {device} "
        f"({torch.cuda.get_device_name() if on_gpu else 'CPU'}), {'bf16 autocast' if on_gpu else 'fp32'}, "
        f"gradient checkpointing {'off' if args.no_checkpointing else 'on'}"
    )
    print(
        f"policy forward, one sample: {flops_fwd / 1e12:.4g} TFLOP; DPO step: {step_flops / 1e12:.4g} TFLOP"
    )
    print(f"DPO step: {seconds:.3f} s (median of {args.steps}; all: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"measured peak ({compute}, {args.peak_size}^3 matmul): {peak / 1e12:.1f} TFLOP/s")
    print(f"MFU: {step_flops / seconds / peak:.1%} (goal >= 40%)")
    if on_gpu:
        print(f"peak memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
