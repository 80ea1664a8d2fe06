"""Environment of a Ray cluster this process starts itself (a single-user machine, all on loopback).

A local cluster's processes inherit the driver's environment, so these are set before ``ray.init``;
a joined cluster (``RAY_ADDRESS``, ``ray job submit``) keeps its own settings. Every value is a
default: one already set in the environment wins.
"""

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


def set_local_ray_env() -> None:
    """Puts `LOCAL_RAY_ENV` into this process's environment where a variable is not set yet."""
    for name, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(name, value)
