"""The full VBench on the evaluation clips: optional, only where the user installed it and its weights.

VBench (Vchitect/VBench, ``pip install vbench``) is not a dependency of ipo-ray: its dimensions need
checkpoints (RAFT, AMT, CLIP, DINO, MUSIQ, ...) that it downloads by default, and production clusters
often have no network. A user who wants it installs the package, fetches its checkpoints into a
folder, and sets ``loop.evaluation.vbench: true`` with ``vbench_weights`` naming that folder (VBench
reads it as ``VBENCH_CACHE_DIR``). `check_full_vbench` runs before Ray starts, so a missing package or
folder stops the job before any round rather than being skipped silently.
"""

import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ipo_ray.config.evaluation import EvaluationConfig


class VBenchSetupError(RuntimeError):
    """Full VBench was asked for but cannot run here; the message names what is missing and the fix."""


def check_full_vbench(settings: EvaluationConfig) -> None:
    """Refuses a config that asks for full VBench where it cannot run (no-op when not asked).

    Raises:
        VBenchSetupError: The `vbench` package is not importable, or `vbench_weights` is not a folder.
    """
    if not settings.vbench:
        return
    if importlib.util.find_spec("vbench") is None:
        raise VBenchSetupError(
            "loop.evaluation.vbench is true but the `vbench` package is not installed: install it "
            "(pip install vbench) with its checkpoints, or set loop.evaluation.vbench: false"
        )
    weights = Path(str(settings.vbench_weights)).expanduser()
    if not weights.is_dir():
        raise VBenchSetupError(
            f"loop.evaluation.vbench_weights: {weights} is not a folder; download VBench's checkpoints "
            "there (its VBENCH_CACHE_DIR layout), or set loop.evaluation.vbench: false"
        )


def run_full_vbench(
    videos: Mapping[str, str],
    dimensions: Sequence[str],
    weights_dir: str,
    out_dir: Path,
    device: str,
) -> dict[str, float]:
    """VBench's custom-input evaluation of the clips (checked by `check_full_vbench` first).

    Args:
        videos: mp4 path → its prompt.
        dimensions: VBench dimensions (those its custom-input mode supports).
        weights_dir: VBench's checkpoint folder.
        out_dir: Where VBench writes its result files.
        device: Torch device VBench runs on.

    Returns:
        ``{"eval/vbench/<dimension>": score}`` on VBench's [0, 1] scale.
    """
    # VBench resolves its checkpoint folder when its modules load, so set it before the import.
    os.environ["VBENCH_CACHE_DIR"] = str(Path(weights_dir).expanduser())
    import torch
    import vbench

    out_dir.mkdir(parents=True, exist_ok=True)
    full_info = Path(vbench.__file__).parent / "VBench_full_info.json"
    bench = vbench.VBench(torch.device(device), str(full_info), str(out_dir))
    bench.evaluate(
        videos_path=str(Path(next(iter(videos))).parent),
        name="eval",
        prompt_list=dict(videos),
        dimension_list=list(dimensions),
        local=True,
        mode="custom_input",
    )
    results = json.loads((out_dir / "eval_eval_results.json").read_text())
    return {f"eval/vbench/{d}": float(results[d][0]) for d in dimensions}
