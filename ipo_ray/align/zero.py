"""DeepSpeed ZeRO (stages 1 and 2) for the Ray Train loop: optimizer state and gradients partitioned
across workers, parameters replicated, so the frozen-copy or adapters-off reference and the export
work unchanged.

Facts behind the settings (``shared/notes/cpu-stack.md``): on CPU DeepSpeed needs
``DS_ACCELERATOR=cpu`` set before it is imported, the gloo group Ray Train already created
(``dist_init_required=False``), and a plain torch optimizer (its own compile for ~40 s). Stage 3
partitions the parameters themselves, which the reference copy and the export would first have to
gather; it is not offered.

Checkpoints: every rank writes its optimizer partition with ``engine.save_checkpoint`` into its own
directory and reports it; Ray Train persists all ranks' files into one checkpoint folder, from which
each rank of a resumed run loads its partition.
"""

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

ZERO_STAGES = (1, 2)
DS_TAG = "zero"  # the sub-folder DeepSpeed writes its checkpoint under


def zero_engine(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    stage: int,
    micro_batch: int,
    grad_accum: int,
    max_grad_norm: float,
    bf16: bool,
) -> Any:
    """Wraps a policy and its torch optimizer in a DeepSpeed engine inside an initialised group.

    Args:
        policy: the model (already on its device). optimizer: a torch optimizer over its trainable
            parameters. stage: 1 or 2. micro_batch, grad_accum: as in the loop (DeepSpeed divides the
            loss by grad_accum and steps the optimizer at the accumulation boundary itself).
        max_grad_norm: clipping norm. bf16: bf16 weights and compute (GPU).

    Returns:
        The engine: call it like the model; ``engine.backward(loss)`` and ``engine.step()`` per
        micro-batch.
    """
    if stage not in ZERO_STAGES:
        raise ValueError(f"zero_stage must be one of {ZERO_STAGES}, got {stage}")
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is first imported
    import deepspeed

    config = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": max_grad_norm,
        "zero_optimization": {"stage": stage},
        "zero_allow_untested_optimizer": True,  # a plain torch AdamW
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,  # the loop reports its own metrics
    }
    engine, _, _, _ = deepspeed.initialize(
        model=policy, optimizer=optimizer, config=config, dist_init_required=False
    )
    return engine


def save_zero_state(engine: Any, directory: str | os.PathLike[str]) -> None:
    """Every rank writes its own optimizer partition (rank 0 also the module) under ``directory``."""
    engine.save_checkpoint(str(directory), tag=DS_TAG)


def load_zero_state(engine: Any, directory: str | os.PathLike[str]) -> None:
    """Loads the module and this rank's optimizer partition from a checkpoint folder."""
    path, _ = engine.load_checkpoint(str(directory), tag=DS_TAG)
    if path is None:
        raise FileNotFoundError(f"no DeepSpeed checkpoint '{DS_TAG}' under {Path(directory)}")
