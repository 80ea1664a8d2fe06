"""The critic's Ray Serve HTTP app (`app.build_app`), its input checks and response building.

`register_version` loads a new critic version into a running app without stopping it.
"""

from ipo_ray.critic.serve.versions import register_version, resolve_critic_path

__all__ = ["register_version", "resolve_critic_path"]
