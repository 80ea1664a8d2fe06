"""Config section `serve`: the critic's Ray Serve HTTP app: address, limits, auth, replicas."""

from ipo_ray.config.base import Section


class ServeConfig(Section):
    """The critic's Ray Serve HTTP app: address, limits, auth, replicas."""
