"""Critic versions as LoRA adapters: a peft adapter folder, served on its base critic's engine.

A full checkpoint per critic version costs a vLLM engine (weights, KV cache) per version in every
replica, and a replaced engine keeps its memory until the replica restarts (`serve/engine.py`): over
weeks of refreshes that adds up. An adapter version holds only the LoRA weights; the app serves it
on the engine of its base critic through vLLM's multi-LoRA batching (`LoRARequest`), so versions
cost megabytes and requests for different versions share running batches.

An adapter folder is what peft's ``save_pretrained`` writes (``adapter_config.json`` and the adapter
weights), plus the critic manifest when `jobs/train_critic.py` wrote it
(``critic.train.lora=true critic.train.save_adapter=true``). Its base is the folder named in
``base_model_name_or_path``: it must be the critic the app serves as ``default``.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


class AdapterError(ValueError):
    """An adapter folder that cannot be served; the message names the problem."""


@dataclass(frozen=True)
class AdapterInfo:
    """A LoRA adapter critic version.

    Attributes:
        path: The adapter folder (absolute).
        base: The base critic folder it was trained on (absolute).
        rank: LoRA rank r.
    """

    path: Path
    base: Path
    rank: int


def is_adapter(folder: str | os.PathLike[str]) -> bool:
    """Whether `folder` is a peft LoRA adapter (rather than a full critic checkpoint)."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def read_adapter(folder: str | os.PathLike[str]) -> AdapterInfo:
    """The adapter's base folder and rank.

    The base named in ``base_model_name_or_path`` is taken as written when it is a folder, else
    relative to the adapter folder (peft records the path the base was loaded from).

    Raises:
        AdapterError: no adapter config, not a LoRA adapter, or a base that is not a critic folder.
    """
    folder = Path(folder).resolve()
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise AdapterError(f"{folder}: cannot read {ADAPTER_CONFIG} ({error})") from None
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"{folder}: a {config.get('peft_type')!r} adapter; critic versions take LoRA only")
    named = config.get("base_model_name_or_path")
    if not named:
        raise AdapterError(f"{folder}: {ADAPTER_CONFIG} names no base_model_name_or_path")
    candidates = [Path(named), folder / named]
    base = next((c.resolve() for c in candidates if (c / "config.json").is_file()), None)
    if base is None:
        raise AdapterError(f"{folder}: its base {named!r} is not a critic folder (no config.json)")
    return AdapterInfo(folder, base, int(config["r"]))


def check_servable(adapter: AdapterInfo, default: Path, max_lora_rank: int, name: str) -> None:
    """Refuses an adapter version the app cannot serve: its engines take no adapters, or none of its
    rank, or its base is not the app's default critic (its engine is the only one adapters share).

    Raises:
        AdapterError: naming the setting to change.
    """
    if max_lora_rank == 0:
        raise AdapterError(
            f"critic version {name!r} is a LoRA adapter ({adapter.path}) but serve.max_lora_rank is 0; "
            f"set it to at least {adapter.rank} (8, 16, 32, ...)"
        )
    if adapter.rank > max_lora_rank:
        raise AdapterError(
            f"critic version {name!r} has LoRA rank {adapter.rank}, above serve.max_lora_rank {max_lora_rank}"
        )
    if adapter.base != default.resolve():
        raise AdapterError(
            f"critic version {name!r} is an adapter of {adapter.base}, but the app's default critic is "
            f"{default.resolve()}; adapters are served on the default critic's engine"
        )
