"""The studio store's SQLite schema, its assignment query and how a task maps to a row."""

import json
from collections.abc import Sequence

from ipo_ray.annotate.tasks import Task

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    batch TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('pointwise', 'pairwise')),
    prompt_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    video_id TEXT NOT NULL,
    video_path TEXT NOT NULL,
    video_id_b TEXT,
    video_path_b TEXT,
    needed INTEGER NOT NULL CHECK (needed >= 0),
    gold_json TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY,
    annotator TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    task_id TEXT NOT NULL REFERENCES tasks (task_id),
    annotator TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'done', 'skipped', 'expired')),
    shown_at REAL NOT NULL,
    leased_at REAL NOT NULL,
    closed_at REAL,
    problem TEXT,
    PRIMARY KEY (task_id, annotator)
);
CREATE INDEX IF NOT EXISTS assignments_by_annotator ON assignments (annotator, state);
CREATE TABLE IF NOT EXISTS labels (
    task_id TEXT NOT NULL REFERENCES tasks (task_id),
    annotator TEXT NOT NULL,
    dimension TEXT NOT NULL,
    answer TEXT NOT NULL,
    reason TEXT NOT NULL,
    seconds REAL NOT NULL,
    submitted_at REAL NOT NULL,
    PRIMARY KEY (task_id, annotator, dimension)
);
CREATE TABLE IF NOT EXISTS critic_verdicts (
    task_id TEXT NOT NULL REFERENCES tasks (task_id),
    dimension TEXT NOT NULL,
    version TEXT NOT NULL,
    verdict TEXT,
    reason TEXT NOT NULL,
    certainty REAL NOT NULL,
    votes_json TEXT NOT NULL,
    scored_at REAL NOT NULL,
    PRIMARY KEY (task_id, dimension)
);
"""

# Tasks this annotator may still be given: never given to them, and a free slot (or gold). A slot
# is held by a label or by an open assignment whose lease was renewed after :stale.
AVAILABLE = """
FROM tasks t
WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.task_id AND a.annotator = :who)
  AND (t.needed = 0 OR t.needed > (SELECT COUNT(*) FROM assignments a
                                   WHERE a.task_id = t.task_id AND (a.state = 'done'
                                         OR (a.state = 'open' AND a.leased_at >= :stale))))
"""
TASK_COLUMNS = (
    "task_id, batch, kind, prompt_id, prompt, video_id, video_path, video_id_b, video_path_b, "
    "needed, gold_json"
)


def task_columns(alias: str) -> str:
    """`TASK_COLUMNS`, each qualified by a table alias (for joins)."""
    return ", ".join(f"{alias}.{c.strip()}" for c in TASK_COLUMNS.split(","))


def task_values(task: Task) -> tuple:
    """A task as the values of `TASK_COLUMNS`, in order (gold as JSON)."""
    gold = json.dumps(task.gold, sort_keys=True) if task.gold is not None else None
    return (
        task.task_id,
        task.batch,
        task.kind,
        task.prompt_id,
        task.prompt,
        task.video_id,
        task.video_path,
        task.video_id_b,
        task.video_path_b,
        task.needed,
        gold,
    )


def task_from_row(row: Sequence) -> Task:
    """The task a row of `TASK_COLUMNS` holds."""
    *head, needed, gold = row
    return Task(*head, needed=needed, gold=json.loads(gold) if gold is not None else None)
