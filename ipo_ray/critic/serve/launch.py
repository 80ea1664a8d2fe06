"""Starting the app on Ray: shared by `jobs/serve_critic.py`, the benchmark and the tests."""

import socket
import time

from ray import serve

from ipo_ray.config import Config
from ipo_ray.critic.serve.app import build_app
from ipo_ray.critic.serve.versions import NAMESPACE
from ipo_ray.local_ray import start_or_join_ray


def start(cfg: Config, num_cpus: int | None = None) -> str:
    """Starts (or updates) the critic app and returns its base URL once every replica is ready.

    Joins the Ray cluster this process runs in (``RAY_ADDRESS``, ``ray job submit``) or starts a
    local one with `num_cpus` and `ipo_ray.local_ray`'s environment (auth off, patient proxy
    checks). Serve's proxy takes `serve.host`, `serve.port` and `serve.request_timeout_s` when
    Serve is first started here; an already running Serve keeps its own.

    Args:
        cfg: The config (`critic` and `serve` sections, `video.num_frames`).
        num_cpus: CPUs of a local cluster; ignored when joining one.
    """
    served = cfg.serve
    start_or_join_ray(num_cpus, namespace=NAMESPACE, logging_level="WARNING")
    if not _serve_running():
        # A new proxy that cannot bind its port fails quietly, and clients then reach whatever
        # holds the port (seen here: another cluster's critic app). Refuse instead.
        _check_port_free(served.host, served.port)
    serve.start(
        http_options={"host": served.host, "port": served.port, "request_timeout_s": served.request_timeout_s}
    )
    started = time.perf_counter()
    serve.run(build_app(cfg), name=served.app_name, route_prefix=served.route_prefix)
    print(f"critic app {served.app_name!r} ready in {time.perf_counter() - started:.1f} s")
    return f"http://{served.host}:{served.port}{served.route_prefix.rstrip('/')}"


def _serve_running() -> bool:
    # serve.status() answers without starting anything; proxies appear once Serve has started.
    return bool(serve.status().proxies)


# A local cluster's proxy can outlive its driver by more than 30 s on a busy machine (back-to-back jobs).
PORT_WAIT_S = 120.0


def _check_port_free(host: str, port: int, wait_s: float = PORT_WAIT_S) -> None:
    """Returns once `port` can be bound on `host`; waits up to `wait_s` for a previous job's proxy
    to let go of it, then fails."""
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket() as probe:
            # As Serve's proxy binds: connections a killed proxy left in TIME_WAIT do not hold the
            # port; a live listener does (the probe does not share it, SO_REUSEPORT is left off).
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return
            except OSError as error:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"serve.port {port} on {host} is taken ({error.strerror}); pick another port"
                    ) from None
        time.sleep(1.0)


def stop(app_name: str = "critic") -> None:
    """Deletes the app (its replicas and engines); Serve and Ray keep running."""
    serve.delete(app_name)
