"""Serve the VLM critic over HTTP with Ray Serve, and print its URL.

Starts the app of `ipo_ray.critic.serve.app` (``POST /v1/score``, ``POST /v1/compare``,
``GET /v1/models``, ``GET /healthz``, docs at ``/docs``) on the Ray cluster this process runs in, or
on a local one. The critic is `critic.path` (null = the shipped world critic); `serve.*` sets the
address, limits, auth and replicas. Blocks until interrupted unless ``--detach`` (only useful when
joining a running cluster: a local cluster ends with this process).

    python jobs/serve_critic.py [--detach] [--config FILE] [KEY=VALUE ...]
    python jobs/serve_critic.py critic.path=runs/critic/v2 serve.allowed_root=runs serve.port=8000
    ray job submit --working-dir . -- python jobs/serve_critic.py --detach serve.host=0.0.0.0

Serve's CLI runs the same app: ``serve run ipo_ray.critic.serve.app:app_builder config=FILE``.
With ``serve.auth=true`` every node needs the token in ``$IPO_RAY_CRITIC_TOKEN`` (serve.auth_token_env).
A local cluster is started with ``RAY_AUTH_MODE=disabled`` unless that is set otherwise.
"""

import argparse
import time

from ray import serve

from ipo_ray.config import add_config_args, parse_config
from ipo_ray.critic.serve.launch import start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detach", action="store_true", help="return once the app is up")
    add_config_args(parser)
    args, cfg = parse_config(parser)

    # 1-3. Join the cluster (or start a local one), start Serve's proxy, deploy the app: replicas
    # load every critic version before they take traffic.
    url = start(cfg)
    print(f"critic serving at {url}  (docs: {url}/docs)")
    if args.detach:
        return
    # 4. Keep the driver (and a local cluster) alive until interrupted.
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


if __name__ == "__main__":
    main()
