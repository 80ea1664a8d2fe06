"""Config section `generator`: the video generator being aligned (backend, model, K, sampling)."""

from ipo_ray.config.base import Section


class GeneratorConfig(Section):
    """The video generator being aligned: backend, model folder, K candidates, sampling."""
