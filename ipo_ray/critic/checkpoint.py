"""The critic checkpoint folder: written atomically by rank 0 of `train_loop.train_critic`.

config.json, model.safetensors, generation_config.json   the critic, fp32
tokenizer*, processor/video/chat-template files         `model.build_processor`'s, unchanged
critic_manifest.json    version, parent, data, training settings, metrics history
"""

import copy
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ipo_ray.critic.train_loop import TrainPlan

MANIFEST = "critic_manifest.json"


def save_checkpoint(
    model: torch.nn.Module,
    processor: Any,
    plan: "TrainPlan",
    history: list[dict[str, float]],
    rows_train: int,
    rows_held: int,
) -> Path:
    """Writes the critic folder atomically: a temporary sibling, then renamed over `plan.out_dir`.

    A LoRA model is saved merged (a copy is merged, training continues on the adapters), so the
    checkpoint is a plain Qwen2-VL folder that vLLM loads without adapter support; with
    ``save_adapter`` the adapter alone is saved instead (peft's folder, its base the init folder), a
    version the critic app serves on its base's engine (`ipo_ray.critic.adapters`).
    """
    out = Path(plan.out_dir)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if plan.lora and plan.save_adapter:
        model.save_pretrained(tmp)  # adapter_config.json (base: the init folder) and adapter weights
    else:
        plain = copy.deepcopy(model).merge_and_unload() if plan.lora else model
        plain.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    parent = read_manifest_version(plan.init_dir)
    manifest = {
        "version": plan.version,
        "parent": parent,
        "data": {
            "labels": str(Path(plan.labels_path).resolve()),
            "rows_train": rows_train,
            "rows_held_out": rows_held,
        },
        "training": asdict(plan) | {"init_dir": str(plan.init_dir)},
        "num_frames": plan.num_frames,
        "metrics": history[-1] if history else {},
        "history": history,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint folder's manifest.

    Raises:
        FileNotFoundError: no such folder or no manifest in it (not a trained critic).
    """
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {MANIFEST}; not a critic checkpoint written by train_critic")
    return json.loads(file.read_text())


def read_manifest_version(path: str | os.PathLike[str]) -> str | None:
    """The version a checkpoint folder's manifest names, or None for a folder without one."""
    file = Path(path) / MANIFEST
    return json.loads(file.read_text())["version"] if file.is_file() else None
