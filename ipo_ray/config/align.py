"""Config section `align`: generator alignment with Ray Train (objective, β, regularisers, workers)."""

from ipo_ray.config.base import Section


class AlignConfig(Section):
    """Generator alignment with Ray Train: objective, β, regularisers, optimiser, workers."""
