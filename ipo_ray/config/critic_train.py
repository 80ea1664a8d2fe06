"""Config section `critic.train`: supervised fine-tuning of the critic on a labels table (IPO Eq. 1)."""

from ipo_ray.config.base import Section


class CriticTrainConfig(Section):
    """Critic SFT: answer-only loss, LoRA or full, Ray Train workers."""
