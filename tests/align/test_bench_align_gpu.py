"""The full-size GPU benchmark script runs (on the CPU, at one block and a small latent)."""

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_align_gpu.py"


def test_the_gpu_dpo_bench_counts_flops_and_reports_mfu_at_a_small_size() -> None:
    args = ["--layers", "1", "--latent", "2,16,8,8", "--text-len", "16", "--peak-size", "256"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--steps", "1", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = done.stdout
    forward = float(re.search(r"policy forward, one sample: ([\d.]+) TFLOP", out).group(1))
    step = float(re.search(r"DPO step: ([\d.]+) TFLOP", out).group(1))
    # One block of CogVideoX-2B's width (~57 M parameters) over 48 tokens: about 2 · 57e6 · 48 FLOPs.
    assert 0.004 < forward < 0.008
    # 2 samples × (policy forward + backward + reference forward)
    assert abs(step - 8 * forward) < 1e-3 * step
    mfu = float(re.search(r"MFU: ([\d.]+)%", out).group(1))
    assert 0 < mfu < 100
