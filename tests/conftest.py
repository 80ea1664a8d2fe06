"""Shared test setup: tests run offline and on CPU, with small thread counts (2-core CI machines)."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def ray_cluster():  # noqa: ANN201 - the ray module
    """A local 2-CPU Ray for one test module; workers must ask for ≤ 0.5 CPU each (2-core deadlocks)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local tests only: no token for a throwaway cluster
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
