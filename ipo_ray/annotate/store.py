"""The studio's durable record: tasks, who was given which, every submitted label, and sessions.

One SQLite file (``<annotate.dir>/studio.db``) in WAL mode with ``synchronous=FULL``: a commit
returns only after its log record is fsynced, and the HTTP answer to a submit is sent after the
commit, so a label the page was told about survives a crash or restart of the server. Each call
opens its own connection and writes inside ``BEGIN IMMEDIATE``, so concurrent writers (threads of a
replica, or several replicas on one machine) are serialised by SQLite's lock and wait for it
(``busy_timeout``) instead of overwriting one another. Every label row has its own primary key
(task, annotator, dimension): two annotators never share a row, and a second submit of one task by
the same annotator is refused (409), not merged.

Assignment rule (`next_task`): an annotator is given the first task in queue order that they have
never been given and that has fewer than ``needed`` annotators holding or having labelled it
(``needed`` 0 means every annotator: gold tasks). Their open task is given back until they label or
skip it, so a reload resumes where they were (and renews its lease). A skip frees the slot for
someone else and is kept with its problem; the same annotator never gets that task again.

Leases: an open assignment not renewed for ``lease_s`` seconds no longer holds its slot. When another
annotator takes a slot that only such a stale lease held, the stale assignment becomes ``expired``
(the oldest first, only as many as needed), and its holder's late submit or skip is refused with
409. A stale lease nobody needed stays open: its holder may still label it. Time comes from
``clock`` so tests move it instead of sleeping.

Critic verdicts (``critic_verdicts``, one row per task and dimension, replaced when rescored) sit
beside the labels for the disagreement view; review tasks (``batch`` ``review``) are queued in front.
"""

import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ipo_ray.annotate.records import CriticVerdict, Progress, Skip, StoredLabel
from ipo_ray.annotate.store_sql import (
    AVAILABLE,
    SCHEMA,
    TASK_COLUMNS,
    task_columns,
    task_from_row,
    task_values,
)
from ipo_ray.annotate.tasks import Task
from ipo_ray.critic.serve.inputs import InputError

R = TypeVar("R")


class Store:
    """Tasks, assignments, labels and sessions in one SQLite file.

    Args:
        path: The database file; created with its tables if missing.
        timeout_s: How long a writer waits for another's lock before failing.
        lease_s: Seconds an open task holds its slot without renewal (see the module docstring).
        clock: Seconds since the epoch; injected by tests.
    """

    def __init__(
        self,
        path: str | Path,
        timeout_s: float = 30.0,
        lease_s: float = 1800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, got {lease_s}")
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.lease_s = lease_s
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode = WAL")  # persistent: readers never block the writer
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous = FULL")  # fsync the log at every commit: durable labels
            db.execute("PRAGMA foreign_keys = ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its start (no lost updates)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # Tasks -------------------------------------------------------------------------------------

    def add_tasks(self, tasks: Sequence[Task], first: bool = False) -> int:
        """Adds tasks to the queue in order; tasks already present (same id) are left as they are.

        Args:
            tasks: The tasks, in the order they are to be given.
            first: Put them in front of every queued task (review tasks), else after.

        Returns:
            How many tasks were added.
        """
        with self._write() as db:
            if first:
                (low,) = db.execute("SELECT COALESCE(MIN(position), 0) FROM tasks").fetchone()
                start = low - len(tasks)
            else:
                (high,) = db.execute("SELECT COALESCE(MAX(position), -1) FROM tasks").fetchone()
                start = high + 1
            added = 0
            for task in tasks:
                cursor = db.execute(
                    f"INSERT OR IGNORE INTO tasks (position, {TASK_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (start + added, *task_values(task)),
                )
                added += cursor.rowcount
        return added

    def tasks(self) -> list[Task]:
        """Every task, in queue order."""
        query = f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY position"
        return self._read(query, lambda *row: task_from_row(row))

    def task(self, task_id: str) -> Task:
        """One task by id.

        Raises:
            InputError: 404, no such task.
        """
        with self._connect() as db:
            row = db.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            raise InputError(404, f"no task {task_id!r}")
        return task_from_row(row)

    # Sessions ----------------------------------------------------------------------------------

    def sign_in(self, name: str, token: str | None, tokens: dict[str, str] | None) -> str:
        """Opens a session for annotator `name` and returns its bearer token.

        Args:
            name: The annotator's name (already checked by the caller).
            token: The token the annotator gave; ignored when `tokens` is None.
            tokens: {name: token} when auth is on, else None (a name is enough).

        Raises:
            InputError: 401, auth is on and `name` has no token or `token` is not it.
        """
        if tokens is not None:
            expected = tokens.get(name)
            # Compare even for unknown names, so timing says nothing about which names exist.
            known = hmac.compare_digest((token or "").encode(), (expected or "\0" * 32).encode())
            if expected is None or not known:
                raise InputError(401, "unknown annotator or wrong token")
        session = secrets.token_urlsafe(24)
        with self._write() as db:
            db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (session, name, self.clock()))
        return session

    def annotator(self, session: str | None) -> str:
        """The annotator a session token belongs to.

        Raises:
            InputError: 401, no or unknown session token.
        """
        row = None
        if session:
            with self._connect() as db:
                row = db.execute("SELECT annotator FROM sessions WHERE session = ?", (session,)).fetchone()
        if row is None:
            raise InputError(401, "unknown session token; sign in again")
        return row[0]

    # Assignments -------------------------------------------------------------------------------

    def next_task(self, annotator: str) -> Task | None:
        """The annotator's open task, else the next task they may take (now assigned to them).

        Returns:
            The task, or None when nothing is left for this annotator.
        """
        now = self.clock()
        with self._write() as db:
            row = db.execute(
                f"SELECT {task_columns('t')} FROM tasks t JOIN assignments a ON a.task_id = t.task_id "
                "WHERE a.annotator = ? AND a.state = 'open' ORDER BY t.position LIMIT 1",
                (annotator,),
            ).fetchone()
            if row is not None:  # a reload: the annotator is back, so the lease is renewed
                db.execute(
                    "UPDATE assignments SET leased_at = ? WHERE task_id = ? AND annotator = ?",
                    (now, row[0], annotator),
                )
                return task_from_row(row)
            row = db.execute(
                f"SELECT {task_columns('t')} {AVAILABLE} ORDER BY t.position LIMIT 1",
                {"who": annotator, "stale": now - self.lease_s},
            ).fetchone()
            if row is None:
                return None
            self._expire_stale(db, row[0], row[-2], now)
            db.execute(
                "INSERT INTO assignments (task_id, annotator, state, shown_at, leased_at) "
                "VALUES (?, ?, 'open', ?, ?)",
                (row[0], annotator, now, now),
            )
        return task_from_row(row)

    def _expire_stale(self, db: sqlite3.Connection, task_id: str, needed: int, now: float) -> None:
        """Expires the oldest stale leases of `task_id` that the new holder's slot needs."""
        if needed == 0:  # gold: every annotator has a slot of their own
            return
        (holding,) = db.execute(
            "SELECT COUNT(*) FROM assignments WHERE task_id = ? AND state IN ('open', 'done')", (task_id,)
        ).fetchone()
        excess = holding + 1 - needed
        if excess > 0:
            db.execute(
                "UPDATE assignments SET state = 'expired', closed_at = ?, problem = 'lease expired' "
                "WHERE rowid IN (SELECT rowid FROM assignments WHERE task_id = ? AND state = 'open' "
                "AND leased_at < ? ORDER BY leased_at LIMIT ?)",
                (now, task_id, now - self.lease_s, excess),
            )

    def check_assigned(self, annotator: str, task_id: str) -> Task:
        """The task, if it is this annotator's (open or done); else 409 (or 404 if there is none)."""
        task = self.task(task_id)
        with self._connect() as db:
            row = db.execute(
                "SELECT state FROM assignments WHERE task_id = ? AND annotator = ?", (task_id, annotator)
            ).fetchone()
        if row is None or row[0] in ("skipped", "expired"):
            raise InputError(409, f"task {task_id!r} is not assigned to {annotator!r}")
        return task

    def submit(
        self, annotator: str, task_id: str, labels: dict[str, tuple[str, str]], seconds: float | None
    ) -> None:
        """Stores one annotation (every dimension at once) and closes the assignment, atomically.

        Args:
            annotator: Who labels.
            task_id: Their open task.
            labels: {dimension: (answer, reason)}, already validated.
            seconds: Time the page measured on the task; None = since the task was first given.

        Raises:
            InputError: 404 no such task; 409 the task is not open for this annotator (never given
                to them, skipped, already labelled, or its lease expired and another annotator took
                the slot); nothing is stored then.
        """
        self.task(task_id)
        now = self.clock()
        with self._write() as db:
            row = db.execute(
                "SELECT state, shown_at FROM assignments WHERE task_id = ? AND annotator = ?",
                (task_id, annotator),
            ).fetchone()
            _check_open(task_id, annotator, row and row[0], self.lease_s)
            took = now - row[1] if seconds is None else seconds
            db.executemany(
                "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (task_id, annotator, dim, answer, reason, took, now)
                    for dim, (answer, reason) in labels.items()
                ],
            )
            db.execute(
                "UPDATE assignments SET state = 'done', closed_at = ? WHERE task_id = ? AND annotator = ?",
                (now, task_id, annotator),
            )

    def skip(self, annotator: str, task_id: str, problem: str | None) -> None:
        """Gives the annotator's open task back, recording why; another annotator will get it.

        Raises:
            InputError: 404 no such task; 409 the task is not open for this annotator.
        """
        self.task(task_id)
        with self._write() as db:
            row = db.execute(
                "SELECT state FROM assignments WHERE task_id = ? AND annotator = ?", (task_id, annotator)
            ).fetchone()
            _check_open(task_id, annotator, row and row[0], self.lease_s)
            db.execute(
                "UPDATE assignments SET state = 'skipped', closed_at = ?, problem = ? "
                "WHERE task_id = ? AND annotator = ?",
                (self.clock(), problem, task_id, annotator),
            )

    def progress(self, annotator: str) -> Progress:
        """Tasks the annotator labelled, and labelled + open + still available to them."""
        with self._connect() as db:
            states = dict(
                db.execute(
                    "SELECT state, COUNT(*) FROM assignments WHERE annotator = ? GROUP BY state", (annotator,)
                ).fetchall()
            )
            (available,) = db.execute(
                f"SELECT COUNT(*) {AVAILABLE}", {"who": annotator, "stale": self.clock() - self.lease_s}
            ).fetchone()
        done = states.get("done", 0)
        return Progress(done=done, total=done + states.get("open", 0) + available)

    # Reading back ------------------------------------------------------------------------------

    def labels(self) -> list[StoredLabel]:
        """Every stored label, in queue order, then annotator, then dimension as submitted."""
        return self._read(
            "SELECT l.task_id, l.annotator, l.dimension, l.answer, l.reason, l.seconds FROM labels l "
            "JOIN tasks t ON t.task_id = l.task_id ORDER BY t.position, l.annotator, l.rowid",
            StoredLabel,
        )

    def skips(self) -> list[Skip]:
        """Every skipped assignment with its recorded problem, in queue order."""
        return self._read(
            "SELECT a.task_id, a.annotator, a.problem FROM assignments a JOIN tasks t "
            "ON t.task_id = a.task_id WHERE a.state = 'skipped' ORDER BY t.position, a.annotator",
            Skip,
        )

    # Critic verdicts ----------------------------------------------------------------------------

    def put_critic_verdicts(self, verdicts: Sequence[CriticVerdict]) -> None:
        """Stores critic verdicts, replacing earlier ones of the same (task, dimension)."""
        now = self.clock()
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO critic_verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        v.task_id,
                        v.dimension,
                        v.version,
                        v.verdict,
                        v.reason,
                        v.certainty,
                        json.dumps(v.votes, sort_keys=True),
                        now,
                    )
                    for v in verdicts
                ],
            )

    def critic_verdicts(self) -> list[CriticVerdict]:
        """Every stored critic verdict, in queue order, then dimension."""
        return self._read(
            "SELECT c.task_id, c.dimension, c.version, c.verdict, c.reason, c.certainty, c.votes_json "
            "FROM critic_verdicts c JOIN tasks t ON t.task_id = c.task_id ORDER BY t.position, c.dimension",
            lambda *row: CriticVerdict(*row[:-1], votes=json.loads(row[-1])),
        )

    def _read(self, query: str, record: Callable[..., R]) -> list[R]:
        with self._connect() as db:
            return [record(*row) for row in db.execute(query).fetchall()]


def _check_open(task_id: str, annotator: str, state: str | None, lease_s: float) -> None:
    """Raises 409 (saying why) unless the annotator's assignment of the task is open."""
    if state == "open":
        return
    if state == "expired":
        why = (
            f"your time on task {task_id!r} ran out (lease of {lease_s / 60:g} minutes) and it went to "
            "another annotator; nothing was stored"
        )
    elif state == "done":
        why = f"task {task_id!r} was already labelled by {annotator!r}"
    else:
        why = f"task {task_id!r} is not assigned to {annotator!r}"
    raise InputError(409, why)
