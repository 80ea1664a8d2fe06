"""A running critic app scored on a labels table: its voted verdicts over HTTP, as clients get them.

`jobs/eval_critic.py --url` uses it to measure the served read itself (n sampled answers voted,
judge-first where the version declares it, both orders where the app asks so) rather than a
transformers read of the same weights. One request per labelled item asks all of its dimensions.
"""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from ipo_ray.critic.sft import SftExample


class _Client(Protocol):  # `client.CriticClient`'s two judging calls
    def score(self, prompt: str, video: str | Path, **options: object) -> dict: ...
    def compare(self, prompt: str, video_a: str | Path, video_b: str | Path, **options: object) -> dict: ...


def served_verdicts(
    client: _Client,
    examples: Sequence[SftExample],
    version: str | None = None,
    samples: int | None = None,
    workers: int = 8,
) -> tuple[list[str | None], str]:
    """Each example's voted verdict from the app (None where no majority), and the version that answered.

    Args:
        client: A `CriticClient` of the app; the examples' video paths must lie under its allowed root.
        examples: Labelled questions (`sft.examples_from_labels`).
        version: Critic version to ask; None = the app's default.
        samples: n per question; None = the app's ``critic.samples``.
        workers: Requests in flight at once (the client caps them too).
    """
    items: dict[tuple[str, tuple[str, ...], str], list[int]] = {}
    for i, e in enumerate(examples):
        items.setdefault((e.kind, e.video_paths, e.caption), []).append(i)

    def ask(item: tuple[tuple[str, tuple[str, ...], str], list[int]]) -> dict:
        (kind, paths, caption), rows = item
        dimensions = [examples[r].dimension for r in rows]
        options = {"version": version, "samples": samples, "dimensions": dimensions}
        if kind == "pointwise":
            return client.score(caption, paths[0], **options)
        return client.compare(caption, paths[0], paths[1], **options)

    verdicts: list[str | None] = [None] * len(examples)
    answered = ""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for (_, rows), body in zip(items.items(), pool.map(ask, items.items()), strict=True):
            answered = body["version"]
            for r in rows:
                verdicts[r] = body["dimensions"][examples[r].dimension]["verdict"]
    return verdicts, answered
