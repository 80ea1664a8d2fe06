"""The studio as a Ray Serve application beside the critic's (same proxy, its own route prefix).

A thin shell: the replica builds the plain FastAPI app of `app.build_api` when it starts (Serve's
``__serve_build_asgi_app__``), so the app and the store are tested without Ray. One replica by
default; more replicas on one machine share the SQLite store safely (WAL, locked writes), replicas
on several machines would need the studio folder on one machine's disk.
"""

from pathlib import Path

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from ipo_ray.annotate.app import StudioSettings, build_api
from ipo_ray.config import Config
from ipo_ray.config.annotate import AnnotateConfig
from ipo_ray.local_ray import start_or_join_ray


@serve.deployment(name="annotation-studio")
@serve.ingress()
class StudioServer:
    """One replica of the studio.

    Args:
        settings: From `studio_settings`.
    """

    def __init__(self, settings: StudioSettings) -> None:
        self.settings = settings

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self.settings)


def studio_settings(cfg: AnnotateConfig) -> StudioSettings:
    """The app's plain settings from the `annotate` section (paths made absolute for the replica)."""
    return StudioSettings(
        dir=str(Path(cfg.dir).resolve()),
        tokens_file=str(Path(cfg.tokens_file).resolve()) if cfg.tokens_file else None,
        max_reason_chars=cfg.max_reason_chars,
        max_prompt_chars=cfg.max_prompt_chars,
        video_min_side=cfg.video_min_side,
        lease_minutes=cfg.lease_minutes,
        review_annotators=cfg.review_annotators,
    )


def build_app(cfg: Config) -> Application:
    """The studio's Serve application for `cfg` (pass to `serve.run`)."""
    section = cfg.annotate
    options = StudioServer.options(ray_actor_options={"num_cpus": section.cpus_per_replica})
    return options.bind(studio_settings(section))


def start(cfg: Config, num_cpus: int | None = None) -> str:
    """Starts the studio on the Ray cluster of this process (or a local one) and returns the page's URL.

    Serve's proxy takes `annotate.host` and `annotate.port` when Serve is first started here; a
    running Serve (e.g. with the critic app) keeps its own, and the studio joins it under its prefix.
    """
    section = cfg.annotate
    start_or_join_ray(num_cpus, logging_level="WARNING")  # as the critic's launcher
    serve.start(http_options={"host": section.host, "port": section.port})
    serve.run(build_app(cfg), name=section.app_name, route_prefix=section.route_prefix)
    return f"http://{section.host}:{section.port}{section.route_prefix.rstrip('/')}"
