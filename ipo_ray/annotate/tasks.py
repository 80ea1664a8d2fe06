"""Labelling tasks and the queue built from a candidates table.

A task is one thing an annotator judges on every dimension: one video with its prompt (pointwise,
Good/Normal/Bad) or two videos of one prompt (pairwise, A/B/tie). Ordinary tasks go to
`annotate.annotators_per_task` annotators; gold tasks carry known answers, go to every annotator
and are mixed in at a fixed rate to measure each annotator's accuracy (IPO Appendix A).
"""

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data.schemas import ANSWERS, LabelKind
from ipo_ray.vocab import DIMENSIONS

if TYPE_CHECKING:  # the store imports this module
    from ipo_ray.annotate.store import Store


@dataclass(frozen=True)
class Task:
    """One labelling task.

    Attributes:
        task_id: Unique and stable (derived from the candidate ids), so rebuilding a queue adds nothing twice.
        batch: Which queue build added it (e.g. ``seed``, later ``review``).
        kind: ``pointwise`` or ``pairwise``.
        prompt_id: The prompt's id in the prompts table.
        prompt: The prompt text shown to the annotator.
        video_id: Candidate id of the video (video A when pairwise).
        video_path: Absolute path of its mp4.
        video_id_b: Candidate id of video B (pairwise only).
        video_path_b: Absolute path of video B (pairwise only).
        needed: Distinct annotators wanted; 0 = every annotator (gold tasks).
        gold: Known answers {dimension: answer} of a gold task (some dimensions may be absent), else None.
    """

    task_id: str
    batch: str
    kind: LabelKind
    prompt_id: str
    prompt: str
    video_id: str
    video_path: str
    video_id_b: str | None
    video_path_b: str | None
    needed: int
    gold: dict[str, str] | None = None


@dataclass(frozen=True)
class GoldItem:
    """A video (or pair) whose answers are known, for gold tasks.

    Attributes:
        video_id: Candidate id (video A when pairwise).
        video_id_b: Candidate id of video B, or None for a pointwise gold item.
        answers: {dimension: known answer}; at least one dimension.
    """

    video_id: str
    video_id_b: str | None
    answers: dict[str, str]

    def __post_init__(self) -> None:
        kind = "pointwise" if self.video_id_b is None else "pairwise"
        if not self.answers:
            raise ValueError(f"gold item {self.video_id}: no answers")
        for dim, answer in self.answers.items():
            if dim not in DIMENSIONS or answer not in ANSWERS[kind]:
                raise ValueError(
                    f"gold item {self.video_id}: {dim}={answer!r}; dimensions are {list(DIMENSIONS)}, "
                    f"{kind} answers {list(ANSWERS[kind])}"
                )


def build_tasks(
    candidates: pa.Table,
    prompts: Mapping[str, str],
    *,
    root: str | Path,
    needed: int,
    pointwise: bool = True,
    pairs_per_prompt: int = 1,
    batch: str = "seed",
) -> list[Task]:
    """Tasks for the candidates of a table: pointwise per candidate, then pairwise per prompt.

    Pairs are two candidates of one prompt, in table order: (c0, c1), (c0, c2), …, (c1, c2), …,
    the first `pairs_per_prompt` of them; c0 is video A.

    Args:
        candidates: A candidates table.
        prompts: {prompt_id: text} for every prompt the candidates name.
        root: Folder relative video paths are relative to (the candidates table's folder).
        needed: Distinct annotators per task.
        pointwise: Whether to make a pointwise task per candidate.
        pairs_per_prompt: Pairwise tasks per prompt (0 = none).
        batch: Name of this queue build.

    Raises:
        ValueError: A candidate names a prompt that `prompts` lacks.
    """
    rows = candidates.select([col.CANDIDATE_ID, col.PROMPT_ID, col.VIDEO_PATH]).to_pylist()
    missing = sorted({r[col.PROMPT_ID] for r in rows} - set(prompts))
    if missing:
        raise ValueError(f"candidates name prompts missing from the prompts table: {missing[:5]}")
    root = Path(root)
    path = {r[col.CANDIDATE_ID]: str((root / r[col.VIDEO_PATH]).resolve()) for r in rows}
    tasks = []
    if pointwise:
        tasks += [
            Task(
                task_id=f"pt-{r[col.CANDIDATE_ID]}",
                batch=batch,
                kind="pointwise",
                prompt_id=r[col.PROMPT_ID],
                prompt=prompts[r[col.PROMPT_ID]],
                video_id=r[col.CANDIDATE_ID],
                video_path=path[r[col.CANDIDATE_ID]],
                video_id_b=None,
                video_path_b=None,
                needed=needed,
            )
            for r in rows
        ]
    by_prompt: dict[str, list[str]] = {}
    for r in rows:
        by_prompt.setdefault(r[col.PROMPT_ID], []).append(r[col.CANDIDATE_ID])
    for prompt_id, ids in by_prompt.items():
        for a, b in itertools.islice(itertools.combinations(ids, 2), pairs_per_prompt):
            tasks.append(
                Task(
                    task_id=f"pw-{a}-{b}",
                    batch=batch,
                    kind="pairwise",
                    prompt_id=prompt_id,
                    prompt=prompts[prompt_id],
                    video_id=a,
                    video_path=path[a],
                    video_id_b=b,
                    video_path_b=path[b],
                    needed=needed,
                )
            )
    return tasks


def gold_tasks(gold: Sequence[GoldItem], tasks: Sequence[Task]) -> list[Task]:
    """Gold tasks for gold items whose videos appear in `tasks` (their prompts and paths are taken there).

    Raises:
        ValueError: A gold item names a video no task has.
    """
    known = {t.video_id: t for t in tasks} | {t.video_id_b: t for t in tasks if t.video_id_b is not None}
    paths = {t.video_id: t.video_path for t in tasks} | {
        t.video_id_b: t.video_path_b for t in tasks if t.video_id_b is not None
    }
    out = []
    for item in gold:
        for vid in (item.video_id, item.video_id_b):
            if vid is not None and vid not in known:
                raise ValueError(f"gold item names video {vid!r}, which is in no task of this queue")
        source = known[item.video_id]
        pairwise = item.video_id_b is not None
        suffix = f"{item.video_id}-{item.video_id_b}" if pairwise else item.video_id
        out.append(
            Task(
                task_id=f"gold-{suffix}",
                batch="gold",
                kind="pairwise" if pairwise else "pointwise",
                prompt_id=source.prompt_id,
                prompt=source.prompt,
                video_id=item.video_id,
                video_path=paths[item.video_id],
                video_id_b=item.video_id_b,
                video_path_b=paths[item.video_id_b] if pairwise else None,
                needed=0,
                gold=dict(item.answers),
            )
        )
    return out


def mix_gold(tasks: Sequence[Task], gold: Sequence[Task], every: int) -> list[Task]:
    """`tasks` with one gold task after every `every` of them; gold tasks left over go at the end."""
    out: list[Task] = []
    spare = list(gold)
    for i, task in enumerate(tasks, start=1):
        out.append(task)
        if i % every == 0 and spare:
            out.append(spare.pop(0))
    return out + spare


REVIEW_BATCH = "review"


def item_task_id(kind: LabelKind, video_id: str, video_id_b: str | None) -> str:
    """The id `build_tasks` gives the task of one item (a video, or a pair A, B)."""
    return f"pt-{video_id}" if kind == "pointwise" else f"pw-{video_id}-{video_id_b}"


def review_task(task: Task, needed: int) -> Task:
    """A review task for the item of `task`: same videos and prompt, a new id, batch ``review``.

    Its id is ``review-`` + the item's task id, so the disagreement view and the correct command
    queue one review per item, whichever asks first (a second request adds nothing).
    """
    item = item_task_id(task.kind, task.video_id, task.video_id_b)
    return dataclasses.replace(task, task_id=f"review-{item}", batch=REVIEW_BATCH, needed=needed, gold=None)


def check_prompt_lengths(tasks: Sequence[Task], max_chars: int) -> None:
    """Refuses a queue whose prompts are longer than the page shows in full.

    Raises:
        ValueError: Names the first too-long prompt, its length and the limit.
    """
    for task in tasks:
        if len(task.prompt) > max_chars:
            raise ValueError(
                f"prompt {task.prompt_id!r} has {len(task.prompt)} characters, more than "
                f"annotate.max_prompt_chars={max_chars}; shorten it or raise the limit"
            )


def queue_reviews(store: "Store", rows: Sequence[Mapping], needed: int) -> int:
    """Queues one review task per item of label `rows`, in front of the queue; returns how many were new.

    The item's studio task gives the review its prompt id and paths; an item the studio never had
    (labels from another table) becomes a task from its row, with an empty prompt id.
    """
    known = {t.task_id: t for t in store.tasks()}
    reviews: dict[str, Task] = {}
    for row in rows:
        kind, a, b = row[col.KIND], row[col.VIDEO_ID], row[col.VIDEO_ID_B]
        item = item_task_id(kind, a, b)
        source = known.get(item) or Task(
            item,
            REVIEW_BATCH,
            kind,
            "",
            row[col.PROMPT],
            a,
            row[col.VIDEO_PATH],
            b,
            row[col.VIDEO_PATH_B],
            needed,
        )
        reviews.setdefault(item, review_task(source, needed))
    return store.add_tasks(list(reviews.values()), first=True)
