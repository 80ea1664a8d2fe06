"""Simulated annotators that label through the studio's HTTP API, as people would through the page.

Each client signs in as one of the world's simulated annotators (`ipo_ray.world.annotators`),
downloads the original mp4s of its task, and answers what that annotator answers: the oracle with
its own strictness and label flips, drawn from one random stream per annotator in the order the
tasks come. The studio gives each annotator its tasks in queue order, so a queue built in the seed
builder's item order (pointwise items, then pairs) with as many annotators as each task needs
reproduces `build_seed_labels` exactly — verdicts, votes, flags and reasons (tested). Gold tasks
mixed into the queue draw from the same streams, so with gold the noise realisation differs from the
builder's (same distribution).

Pairwise reasons: the oracle's own reason when the annotator's preference agrees with it, else the
seed builder's generic sentence (`generic_pair_reason`).
"""

import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import numpy as np

from ipo_ray.data.video import read_frames
from ipo_ray.world.annotators import Annotator, annotate_pair, annotate_point, generic_pair_reason
from ipo_ray.world.measure import measure
from ipo_ray.world.oracle import prefer, verdicts
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.spec import PromptSpec


class SimulatedAnnotatorClient:
    """One simulated annotator labelling every task the studio gives it.

    Args:
        base_url: The studio's URL, e.g. ``http://127.0.0.1:8000/annotate``.
        annotator: Who labels (its id is the sign-in name).
        specs: {prompt_id: structured prompt} of the tasks' prompts (the world's prompts table).
        settings: The world's render settings.
        token: The annotator's token when the studio has auth on.
        timeout_s: Per-request timeout.
    """

    def __init__(
        self,
        base_url: str,
        annotator: Annotator,
        specs: Mapping[str, PromptSpec],
        settings: RenderSettings,
        token: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.annotator = annotator
        self.specs = specs
        self.settings = settings
        self.rng = np.random.default_rng(annotator.seed)  # one stream, as in build_seed_labels
        self.http = httpx.Client(base_url=base_url.rstrip("/") + "/api", timeout=timeout_s)
        body = {"name": annotator.annotator_id, "token": token}
        session = self._call("POST", "session", json=body).json()["session"]
        self.http.headers["Authorization"] = f"Bearer {session}"

    def run(self, limit: int | None = None) -> int:
        """Labels tasks until none is left (or `limit` are done); returns how many were labelled."""
        done = 0
        while limit is None or done < limit:
            task = self._call("GET", "next").json()["task"]
            if task is None:
                break
            answers, reasons = self.judge(task)
            path = f"tasks/{task['task_id']}/label"
            self._call("POST", path, json={"answers": answers, "reasons": reasons, "seconds": 0.0})
            done += 1
        return done

    def judge(self, task: dict) -> tuple[dict[str, str], dict[str, str]]:
        """This annotator's answers and reasons for one task (as the page would send them)."""
        spec = self.specs[task["prompt_id"]]
        m = [measure(self._frames(task, side), spec, self.settings) for side in task["videos"]]
        if task["kind"] == "pointwise":
            judged = annotate_point(self.annotator, m[0], spec, self.rng, self.settings)
            return {d: j.verdict for d, j in judged.items()}, {d: j.reason for d, j in judged.items()}
        prefs = annotate_pair(self.annotator, m[0], m[1], spec, self.rng, self.settings)
        oracle = prefer(verdicts(m[0], spec, self.settings), verdicts(m[1], spec, self.settings))
        reasons = {
            d: oracle[d].reason if p == oracle[d].preference else generic_pair_reason(p)
            for d, p in prefs.items()
        }
        return dict(prefs), reasons

    def _frames(self, task: dict, side: str) -> np.ndarray:
        data = self._call("GET", f"tasks/{task['task_id']}/video/{side}", params={"form": "original"}).content
        with tempfile.TemporaryDirectory(prefix="sim-annotator-") as scratch:
            path = Path(scratch) / "video.mp4"
            path.write_bytes(data)
            return read_frames(path, num_frames=None)  # what the seed builder measures

    def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.is_error:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    def close(self) -> None:
        self.http.close()


def run_simulated_annotators(
    base_url: str,
    annotators: Sequence[Annotator],
    specs: Mapping[str, PromptSpec],
    settings: RenderSettings,
    tokens: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Every annotator labels all it is given, all at once (one thread each); returns tasks per annotator.

    Raises:
        RuntimeError: A client failed; names the annotator.
    """
    done: dict[str, int] = {}
    errors: list[str] = []

    def work(annotator: Annotator) -> None:
        token = (tokens or {}).get(annotator.annotator_id)
        try:
            client = SimulatedAnnotatorClient(base_url, annotator, specs, settings, token)
            try:
                done[annotator.annotator_id] = client.run()
            finally:
                client.close()
        except Exception as error:  # noqa: BLE001 - reported below with the annotator's name
            errors.append(f"{annotator.annotator_id}: {error}")

    threads = [threading.Thread(target=work, args=(a,)) for a in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("simulated annotators failed: " + "; ".join(errors))
    return done
