"""The cluster files stay loadable: job configs validate, manifests parse and keep auth on."""

from pathlib import Path

import pytest
import yaml

from ipo_ray.config import load_config
from ipo_ray.critic.serve.app import replica_resources

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


@pytest.mark.parametrize("name", ["cogvideox-2b.yaml", "wan-1.3b.yaml"])
def test_gpu_job_configs_validate(name: str) -> None:
    cfg = load_config(CLUSTER / "configs" / name)
    assert cfg.generator.num_candidates == 8 and cfg.align.batch_size == 128 and cfg.align.lr == 2e-5
    assert cfg.loop.rounds == 3
    assert cfg.loop.prompt_source == "llm" and cfg.loop.prompt_llm.num_gpus == 1.0
    assert cfg.serve.auth, "cluster configs keep the critic's bearer token on"
    # vLLM on GPU needs the replica to reserve one, or Ray hides every GPU from it.
    assert replica_resources(cfg.serve) == {"num_cpus": 4.0, "num_gpus": 1.0}


def test_cpu_replicas_reserve_no_gpu() -> None:
    assert replica_resources(load_config(None).serve) == {"num_cpus": 0.5}


def test_manifests_keep_ray_token_auth_on() -> None:
    cluster = yaml.safe_load((CLUSTER / "raycluster.yaml").read_text())
    job = yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())
    assert cluster["spec"]["authOptions"]["mode"] == "token"
    assert job["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"
    assert cluster["spec"]["headGroupSpec"]["serviceType"] == "ClusterIP"
    up = yaml.safe_load((CLUSTER / "ray-up.yaml").read_text())
    assert all("RAY_AUTH_MODE=token" in cmd for cmd in up["head_start_ray_commands"][1:])
    assert "--dashboard-host=127.0.0.1" in up["head_start_ray_commands"][1]
