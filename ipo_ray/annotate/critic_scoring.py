"""Critic verdicts for studio tasks, from the critic's HTTP service or from a local backend.

Both give one `CriticVerdict` per task and dimension: the majority of the critic's n samples, its
reason and its certainty (`ipo_ray.critic.voting`). `HttpCritic` asks ``/v1/score`` (pointwise) and
``/v1/compare`` (pairwise) of a running critic app, which votes server-side; `LocalCritic` asks a
`CriticBackend` (transformers or vLLM) in this process and votes here. The job stores the verdicts
in the studio (`Store.put_critic_verdicts`) for the disagreement view.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ipo_ray.annotate.records import CriticVerdict
from ipo_ray.annotate.tasks import Task
from ipo_ray.critic import judge
from ipo_ray.critic.checkpoint import MANIFEST
from ipo_ray.critic.client import CriticClient
from ipo_ray.critic.sft import FrameCache
from ipo_ray.critic.voting import vote
from ipo_ray.vocab import DIMENSIONS


class HttpCritic:
    """Verdicts from the critic's Serve app.

    Args:
        client: A `CriticClient` of the app.
        upload: Send the videos' bytes (the app runs elsewhere) instead of their paths (the app
            reads them under its allowed root).
    """

    def __init__(self, client: CriticClient, upload: bool = False) -> None:
        self.client = client
        self.upload = upload

    def __call__(self, tasks: Sequence[Task]) -> list[CriticVerdict]:
        """Every dimension of every task, one request per task."""
        out = []
        for task in tasks:
            if task.kind == "pointwise":
                body = self.client.score(task.prompt, task.video_path, upload=self.upload)
            else:
                body = self.client.compare(
                    task.prompt, task.video_path, task.video_path_b, upload=self.upload
                )
            out += verdicts_from_response(task.task_id, body)
        return out


def verdicts_from_response(task_id: str, body: dict[str, Any]) -> list[CriticVerdict]:
    """The verdicts of one ``/v1/score`` or ``/v1/compare`` answer."""
    return [
        CriticVerdict(
            task_id=task_id,
            dimension=dim,
            version=body["version"],
            verdict=j["verdict"],
            reason=j["reason"],
            certainty=j["certainty"],
            votes=j["votes"],
        )
        for dim, j in body["dimensions"].items()
    ]


class LocalCritic:
    """Verdicts from a backend in this process.

    Args:
        backend: A `judge.CriticBackend` (e.g. `TransformersBackend`).
        version: Name stored with the verdicts (`critic_version`).
        samples: n samples per question, voted.
        num_frames: Frames sampled per video (as the critic was trained).
        batch: Tasks per backend call.
        judge_first: The critic's pairwise read (`tokenizer.judges_first`), as the Serve app reads it.
        read: How verdicts are read (``critic.vote``); ``"first_token"`` needs a
            `judge.FirstTokenBackend`.
    """

    def __init__(
        self,
        backend: judge.CriticBackend,
        version: str,
        samples: int,
        num_frames: int,
        batch: int = 16,
        judge_first: bool = False,
        read: judge.Read = "samples",
    ) -> None:
        self.backend, self.version, self.samples, self.batch = backend, version, samples, batch
        self.frames = FrameCache(num_frames)
        self.judge_first, self.read = judge_first, read

    def __call__(self, tasks: Sequence[Task]) -> list[CriticVerdict]:
        """Every dimension of every task, `batch` tasks of one kind per backend call."""
        out = []
        for kind in ("pointwise", "pairwise"):
            chosen = [t for t in tasks if t.kind == kind]
            for first in range(0, len(chosen), self.batch):
                chunk = chosen[first : first + self.batch]
                captions = [t.prompt for t in chunk]
                a = [self.frames(t.video_path) for t in chunk]
                if kind == "pointwise":
                    answers = judge.score(self.backend, a, captions, DIMENSIONS, self.samples, read=self.read)
                else:
                    b = [self.frames(t.video_path_b) for t in chunk]
                    answers = judge.compare(
                        self.backend,
                        a,
                        b,
                        captions,
                        DIMENSIONS,
                        self.samples,
                        judge_first=self.judge_first,
                        read=self.read,
                    )
                for task, per_dim in zip(chunk, answers, strict=True):
                    for dim, parsed in per_dim.items():
                        result = vote(parsed, kind)
                        out.append(
                            CriticVerdict(
                                task.task_id,
                                dim,
                                self.version,
                                result.verdict,
                                result.reason,
                                result.certainty,
                                result.votes,
                            )
                        )
        order = {t.task_id: i for i, t in enumerate(tasks)}
        return sorted(out, key=lambda v: order[v.task_id])


def critic_version(folder: str | Path) -> str:
    """A critic folder's version from its manifest, else the folder's name."""
    manifest = Path(folder) / MANIFEST
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else Path(folder).name
