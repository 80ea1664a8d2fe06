"""The studio as a Ray Serve app on a local Ray: the page and the API answer under its route prefix."""

from pathlib import Path

import httpx
import pytest

from ipo_ray.annotate.store import Store
from ipo_ray.config import load_config
from ipo_ray.local_ray import free_port

from .conftest import WorldSet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_studio_on_serve(world_set: WorldSet, tmp_path: Path) -> None:
    import ray
    from ray import serve

    from ipo_ray.annotate.serve import start

    Store(tmp_path / "studio.db").add_tasks(world_set.tasks[:2])
    port = free_port()
    cfg = load_config(None, [f"annotate.dir={tmp_path}", f"annotate.port={port}"])
    try:
        url = start(cfg, num_cpus=2)
        assert url == f"http://127.0.0.1:{port}/annotate"
        page = httpx.get(url, timeout=30, follow_redirects=True)  # Serve redirects /annotate to /annotate/
        assert page.status_code == 200 and 'src="/annotate/static/studio.js"' in page.text
        assert httpx.get(f"{url}/static/studio.css", timeout=30).status_code == 200
        session = httpx.post(f"{url}/api/session", json={"name": "ann"}, timeout=30).json()["session"]
        auth = {"Authorization": f"Bearer {session}"}
        task = httpx.get(f"{url}/api/next", headers=auth, timeout=30).json()["task"]
        assert task["task_id"] == world_set.tasks[0].task_id
        video = httpx.get(f"{url}/api/tasks/{task['task_id']}/video/a", headers=auth, timeout=30)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert httpx.get(f"{url}/api/next", timeout=30).status_code == 401
    finally:
        serve.shutdown()
        ray.shutdown()
