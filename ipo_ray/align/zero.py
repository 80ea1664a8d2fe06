"""DeepSpeed ZeRO for the Ray Train loop: stage 1 partitions the optimizer state across workers,
stage 2 also the gradients, stage 3 also the parameters.

Facts behind the settings (``shared/notes/cpu-stack.md``): on CPU DeepSpeed needs
``DS_ACCELERATOR=cpu`` set before it is imported, the gloo group Ray Train already created
(``dist_init_required=False``), and a plain torch optimizer (its own compile for ~40 s).

Stage 3 and the parts of the loop that need whole weights: the frozen-copy reference is copied from
the policy before the engine partitions it (so it stays whole, as under stages 1-2); the adapters-off
reference calls the partitioned policy, whose DeepSpeed hooks gather each layer for its forward; the
checkpoint's full weights (which the export loads) are gathered by :func:`full_state_dict`.

Checkpoints: every rank writes its optimizer partition with ``engine.save_checkpoint`` into its own
directory and reports it; Ray Train persists all ranks' files into one checkpoint folder, from which
each rank of a resumed run loads its partition.
"""

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

ZERO_STAGES = (1, 2, 3)
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
            parameters. stage: 1, 2 or 3. micro_batch, grad_accum: as in the loop (DeepSpeed divides the
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


def full_state_dict(policy: nn.Module, stage: int) -> dict[str, torch.Tensor]:
    """The policy's whole state dict. Under stage 3 each rank holds a slice of every parameter, so they
    are gathered (a collective: every rank must call this) and copied out before DeepSpeed frees them.
    """
    if stage != 3:
        return policy.state_dict()
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(policy.parameters())):
        return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def save_zero_state(engine: Any, directory: str | os.PathLike[str]) -> None:
    """Every rank writes its own optimizer partition (rank 0 also the module) under ``directory``."""
    engine.save_checkpoint(str(directory), tag=DS_TAG)


def load_zero_state(engine: Any, directory: str | os.PathLike[str]) -> None:
    """Loads the module and this rank's optimizer partition (under stage 3 its parameter partition
    too) from a checkpoint folder."""
    path, _ = engine.load_checkpoint(str(directory), tag=DS_TAG)
    if path is None:
        raise FileNotFoundError(f"no DeepSpeed checkpoint '{DS_TAG}' under {Path(directory)}")
