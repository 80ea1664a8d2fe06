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

    from ipo_ray.local_ray import start_or_join_ray

    start_or_join_ray(2, log_to_driver=False)  # no token, patient Serve proxy checks on busy cores
    yield ray
    ray.shutdown()
