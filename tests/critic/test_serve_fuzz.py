"""Fuzzing the critic's HTTP API from its own OpenAPI schema: nothing a client sends gives a 5xx.

schemathesis generates valid and invalid requests (JSON and multipart bodies, random paths, random
bytes as videos) for every operation; a second property sends random prompts with a real video, so
the engine path sees them too. Bounded in examples and time, loopback only.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ipo_ray.config import load_config
from ipo_ray.data.video import write_mp4
from ipo_ray.local_ray import free_port

pytestmark = pytest.mark.slow

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 25  # per operation and generation mode


@pytest.fixture(scope="module")
def url(critic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import ray
    from ray import serve

    from ipo_ray.critic.serve.launch import start

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["IPO_RAY_CRITIC_TOKEN"] = TOKEN
    root = tmp_path_factory.mktemp("fuzz")
    clip = np.zeros((8, 16, 16, 3), dtype=np.uint8)
    clip[:, 4:8, 4:8] = 200
    write_mp4(root / "clip.mp4", clip, fps=8)
    port = free_port()
    overrides = [
        f"critic.path={critic_dir}",
        "critic.samples=2",
        "critic.max_new_tokens=4",
        f"serve.allowed_root={root}",
        f"serve.port={port}",
        "serve.auth=true",
        "serve.max_samples=4",
        "serve.max_upload_mb=0.5",
    ]
    yield start(load_config(None, overrides), num_cpus=2)
    serve.shutdown()
    ray.shutdown()


def _fuzz(operation: object, mode: object, url: str, failures: list[str], seen: set[int]) -> None:
    """Runs EXAMPLES generated requests of one operation in one generation mode."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))  # type: ignore[attr-defined]
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, headers=AUTH, timeout=60)
        seen.add(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.path} {mode}: {response.status_code} {response.text[:300]}")

    check()


@pytest.mark.timeout(300)
def test_schema_fuzz_gives_no_server_errors(url: str) -> None:
    import schemathesis
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    seen: set[int] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode == GenerationMode.NEGATIVE and operation.method.upper() == "GET":
                continue  # no parameters and no body: nothing can be made invalid
            _fuzz(operation, mode, url, failures, seen)
    assert not failures, failures
    assert 200 in seen and 422 in seen, seen  # the fuzzer reached both the model and the validators


@pytest.mark.timeout(180)
def test_random_prompts_reach_the_engine_without_server_errors(url: str) -> None:
    import httpx
    from hypothesis import given, settings
    from hypothesis import strategies as st

    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:

        @settings(max_examples=20, deadline=None, database=None)
        @given(
            prompt=st.text(min_size=1, max_size=3000),
            samples=st.integers(1, 4),
            dimension=st.sampled_from(["semantic_consistency", "motion_smoothness", "faithfulness"]),
        )
        def check(prompt: str, samples: int, dimension: str) -> None:
            body = {"prompt": prompt, "video_path": "clip.mp4", "samples": samples, "dimensions": [dimension]}
            response = client.post("/v1/score", json=body)
            assert response.status_code < 500, response.text
            if response.status_code == 200:
                assert len(response.json()["dimensions"][dimension]["answers"]) == samples

        check()
