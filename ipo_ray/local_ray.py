"""A Ray cluster this process starts itself (a single-user machine, all on loopback), or joins.

A local cluster's processes inherit the driver's environment, so `LOCAL_RAY_ENV` is set before
``ray.init``; a joined cluster (``RAY_ADDRESS``, ``ray job submit``) keeps its own settings. Every
value is a default: one already set in the environment wins. Stdlib only: every worker process of
a local cluster imports this module (`quiet_dashboardless_worker`).
"""

import logging
import os

LOCAL_RAY_ENV = {
    # Ray 2.60's token auth refuses local clients that hold no token (../shared/notes/cpu-stack.md).
    "RAY_AUTH_MODE": "disabled",
    # Serve gives a new HTTP proxy 5 s to report ready and kills it after 3 misses. On 2 busy cores
    # (the first start after an install, compiling bytecode) the proxy took longer and the job died
    # in serve.start; 30 s is still a prompt failure for a proxy that is really stuck.
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
}

# Ray Train 2.60 starts a detached PlacementGroupCleaner per run that asks the State API once a
# second whether the run's controller is alive. The State API is served by the dashboard, which a
# local cluster here runs without (2 cores), so every ask fails and logs a warning: ~3,600 lines an
# hour of a critic's SFT, burying its progress. The cleaner cannot work there either way.
STATE_API_WARNERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)


def set_local_ray_env() -> None:
    """Puts `LOCAL_RAY_ENV` into this process's environment where a variable is not set yet."""
    for name, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(name, value)


def quiet_dashboardless_worker() -> None:
    """Setup hook of every worker of a local cluster: silences `STATE_API_WARNERS` below errors."""
    for name in STATE_API_WARNERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def start_or_join_ray(num_cpus: int | None = None, **init_kwargs: object) -> None:
    """Joins the cluster of ``RAY_ADDRESS`` (``ray job submit``), or starts a local one.

    A local cluster gets `LOCAL_RAY_ENV`, no dashboard and `quiet_dashboardless_worker` in every
    worker process; `num_cpus` applies to it alone. Does nothing when Ray is already initialised.

    Args:
        num_cpus: CPUs of a local cluster; None = all of this machine's.
        init_kwargs: Further ``ray.init`` arguments for both cases (namespace, logging_level, ...).
    """
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**init_kwargs)
        return
    set_local_ray_env()
    hook = f"{__name__}.{quiet_dashboardless_worker.__name__}"
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        runtime_env={"worker_process_setup_hook": hook},
        **init_kwargs,
    )


# Ray gives its own servers (GCS, raylet, agents) ports the kernel picks from its ephemeral range,
# and its workers 10002-19999. A port freed from either range before a cluster starts can be taken
# by that cluster before a proxy started later binds it (the likeliest reason a test's resumed job
# once found its port held for 120 s). Ports between the two are handed out by nobody but the user.
RAY_WORKER_PORT_MAX = 19999


def free_port(host: str = "127.0.0.1", tries: int = 200) -> int:
    """A port free on `host` now that neither the kernel nor a Ray cluster started later hands out.

    For a proxy or server that binds after Ray starts (tests, benchmarks). Picks at random between
    Ray's worker ports and the kernel's ephemeral range (``ip_local_port_range``).

    Raises:
        RuntimeError: No free port in that range after `tries` picks.
    """
    import random
    import socket

    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            ephemeral_low = int(ranges.read().split()[0])
    except OSError:
        ephemeral_low = 32768  # Linux's default; macOS starts at 49152
    for port in random.sample(range(RAY_WORKER_PORT_MAX + 1, ephemeral_low), tries):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host} between {RAY_WORKER_PORT_MAX + 1} and {ephemeral_low - 1}")
