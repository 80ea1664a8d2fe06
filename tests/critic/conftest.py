"""Critic fixtures: a tiny random Qwen2-VL critic folder and a real mp4 clip's frames.

The critic's weights are redrawn wider than Qwen2-VL's init (std 0.02 leaves logits almost flat
whatever the positions), so that a position mismatch between engines shows in the log-probs.
"""

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ipo_ray.critic.model import build_critic, load_critic
from ipo_ray.critic.sft import SftExample, examples_from_labels
from ipo_ray.critic.srpo import srpo_pairs, write_pairs
from ipo_ray.critic.templates import format_answer
from ipo_ray.critic.train_loop import TrainPlan
from ipo_ray.data import TableKind, make_table, read_table
from ipo_ray.data import columns as col
from ipo_ray.data.video import read_frames, write_mp4
from ipo_ray.vocab import PREFERENCES, VERDICTS
from ipo_ray.world.annotators import make_annotators
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import build_seed_set

CORPUS = [
    "A small red circle glides slowly to the left across a dark blue background.",
    "A large green square bounces on a black background.",
    "The circle jitters between frames.",
    "The colour is wrong: the square is blue, not green.",
]


def moving_square(num_frames: int = 16, size: int = 16) -> np.ndarray:
    """A red 4-px square moving right one pixel per frame on dark blue, (T, size, size, 3) uint8."""
    frames = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    frames[...] = (15, 20, 70)
    for t in range(num_frames):
        x = t % (size - 4)
        frames[t, 6:10, x : x + 4] = (230, 40, 40)
    return frames


@pytest.fixture(scope="session")
def critic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import Qwen2VLForConditionalGeneration

    path = build_critic(tmp_path_factory.mktemp("critic"), CORPUS, seed=0)
    model = Qwen2VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim >= 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.15)
    model.save_pretrained(path)
    return path


LORA_RANK = 8  # rank of the test adapters (a rank vLLM accepts)


def _make_adapter(base: Path, out: Path, seed: int = 0) -> Path:
    """A LoRA adapter of `base` on the language model's projections, with weights far from zero (a
    freshly initialised adapter is the identity, which would prove nothing)."""
    from peft import LoraConfig, get_peft_model

    from ipo_ray.critic.train_loop import LORA_TARGETS

    model, _ = load_critic(base)
    config = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules=LORA_TARGETS)
    peft = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    peft.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def make_adapter() -> Callable[..., Path]:
    """`_make_adapter(base, out, seed=0)`: a LoRA adapter version of a critic folder."""
    return _make_adapter


@pytest.fixture(scope="session")
def clip_frames(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """16 frames of 16×16 read back from an mp4 (T=8 temporal groups > 2 merged rows: the parity case)."""
    path = tmp_path_factory.mktemp("clips") / "square.mp4"
    write_mp4(path, moving_square(), fps=8)
    return read_frames(path, num_frames=16)


@pytest.fixture(scope="session")
def vllm_backend(critic_dir: Path):  # noqa: ANN201 - VllmBackend imported lazily (vLLM import is slow)
    # CPU settings from ../shared/notes/cpu-stack.md; read by vLLM when the engine starts.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from ipo_ray.critic.judge import SamplingConfig
    from ipo_ray.critic.vllm_backend import VllmBackend

    sampling = SamplingConfig(seed=0, max_new_tokens=12)
    return VllmBackend(critic_dir, sampling, block_size=32, max_logprobs=1024)


def _dissent_pairs(labels_path: Path, out: Path) -> Path:
    """SRPO pairs of a labels table as if each question had been sampled twice: the voted verdict
    with its reason, and another verdict with the same reason; written to `out`."""
    labels = read_table(labels_path, TableKind.LABELS)
    rows = []
    for label in labels.to_pylist():
        kind, verdict = label[col.KIND], label[col.VERDICT]
        other = next(v for v in (VERDICTS if kind == "pointwise" else PREFERENCES) if v != verdict)
        for i, answer in enumerate((verdict, other)):
            rows.append(
                {
                    col.ANSWER_ID: f"{label[col.LABEL_ID]}__{i}",
                    col.LABEL_ID: label[col.LABEL_ID],
                    col.SAMPLE_INDEX: i,
                    col.ANSWER_TEXT: format_answer(kind, answer, label[col.REASON]),
                    col.ANSWER_VERDICT: answer,
                }
            )
    pairs = srpo_pairs(labels, make_table(rows, TableKind.CRITIC_ANSWERS), 0.5, 2, cot=False)
    assert len(pairs) == labels.num_rows  # one dissent per label: one pair each
    return write_pairs(out, pairs)


@pytest.fixture(scope="session")
def dissent_pairs() -> Callable[[Path, Path], Path]:
    """`dissent_pairs(labels_path, out)`: see `_dissent_pairs`."""
    return _dissent_pairs


@pytest.fixture(scope="session")
def seed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world seed set (10 clips, 4 pairs, half defective) with its labels table."""
    out = tmp_path_factory.mktemp("seed")
    build_seed_set(
        out,
        num_clips=10,
        num_pairs=4,
        defect_rate=0.5,
        strength_range=(0.6, 1.0),
        seed=3,
        annotators=make_annotators(3, seed=0),
        settings=RenderSettings(),
    )
    return out


@pytest.fixture(scope="module")
def examples(seed_dir: Path) -> list[SftExample]:
    return examples_from_labels(read_table(seed_dir / "labels.parquet", TableKind.LABELS))


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory: pytest.TempPathFactory, examples: list[SftExample]) -> Path:
    """A random critic whose tokenizer knows the seed set's captions and reasons."""
    corpus = sorted({e.caption for e in examples} | {e.reason for e in examples})
    return build_critic(tmp_path_factory.mktemp("init"), corpus, seed=0)


@pytest.fixture
def small_plan(seed_dir: Path, init_dir: Path, tmp_path: Path) -> Callable[..., TrainPlan]:
    """A few steps of SFT from `init_dir` on the seed set, written under tmp_path/critic."""

    def make(**overrides: object) -> TrainPlan:
        base = {
            "init_dir": str(init_dir),
            "labels_path": str(seed_dir / "labels.parquet"),
            "out_dir": str(tmp_path / "critic"),
            "num_frames": 16,
            "batch_size": 8,
            "steps": 4,
            "warmup_steps": 0,
            "eval_every": 4,
            "held_out": 0.2,
        }
        return TrainPlan(**(base | overrides))  # type: ignore[arg-type]

    return make
