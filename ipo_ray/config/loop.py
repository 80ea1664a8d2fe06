"""Config section `loop`: dual-IPO rounds: how many, which stages, overlap resources, MLflow tracking."""

from ipo_ray.config.base import Section


class LoopConfig(Section):
    """Dual-IPO rounds: how many, which stages, overlap resources, MLflow tracking."""
