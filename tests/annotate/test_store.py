"""The studio store: who gets which task, refusals, durability across restarts, concurrent writers."""

import threading
from pathlib import Path

import pytest

from ipo_ray.annotate.store import Store
from ipo_ray.annotate.tasks import Task
from ipo_ray.critic.serve.inputs import InputError
from ipo_ray.vocab import DIMENSIONS

GOOD = {d: ("Good", "") for d in DIMENSIONS}


def task(i: int, needed: int = 2, gold: dict[str, str] | None = None) -> Task:
    return Task(
        f"t{i}", "seed", "pointwise", f"p{i}", f"prompt {i}", f"v{i}", f"/v/{i}.mp4", None, None, needed, gold
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "studio.db")
    s.add_tasks([task(0), task(1), task(2)])
    return s


def test_each_task_goes_to_n_distinct_annotators_in_queue_order(store: Store) -> None:
    got: dict[str, list[str]] = {}
    for who in ("ann", "bob", "cat"):
        while (t := store.next_task(who)) is not None:
            store.submit(who, t.task_id, GOOD, 1.0)
            got.setdefault(who, []).append(t.task_id)
    assert got == {"ann": ["t0", "t1", "t2"], "bob": ["t0", "t1", "t2"]}  # 2 needed: cat gets none
    assert len(store.labels()) == 3 * 2 * len(DIMENSIONS)


def test_open_task_is_given_back_until_labelled(store: Store) -> None:
    first = store.next_task("ann")
    assert store.next_task("ann") == first  # a reload resumes the same task
    store.submit("ann", first.task_id, GOOD, None)
    assert store.next_task("ann").task_id == "t1"


def test_second_submit_and_unassigned_submit_are_409_and_store_nothing(store: Store) -> None:
    t = store.next_task("ann")
    with pytest.raises(InputError) as refused:
        store.submit("bob", t.task_id, GOOD, 1.0)  # never given to bob
    assert refused.value.status == 409
    store.submit("ann", t.task_id, {d: ("Bad", "x") for d in DIMENSIONS}, 1.0)
    with pytest.raises(InputError) as again:
        store.submit("ann", t.task_id, GOOD, 1.0)
    assert again.value.status == 409
    assert {x.answer for x in store.labels()} == {"Bad"}  # the first label was not overwritten


def test_skip_records_problem_and_reassigns_never_to_the_same_annotator(store: Store) -> None:
    t = store.next_task("ann")
    store.skip("ann", t.task_id, "video A failed to load: 400")
    assert store.skips()[0].problem == "video A failed to load: 400"
    assert store.next_task("ann").task_id == "t1"  # ann never gets t0 again
    assert store.next_task("bob").task_id == "t0"
    assert store.next_task("cat").task_id == "t0"  # ann's skip freed a slot: bob and cat hold it
    with pytest.raises(InputError) as refused:
        store.submit("ann", "t0", GOOD, 1.0)
    assert refused.value.status == 409


def test_gold_tasks_go_to_every_annotator(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.add_tasks([task(0, needed=0, gold={"faithfulness": "Good"})])
    assert all(store.next_task(w) is not None for w in ("a", "b", "c", "d"))


def test_progress_counts_done_and_what_is_left(store: Store) -> None:
    assert (store.progress("ann").done, store.progress("ann").total) == (0, 3)
    t = store.next_task("ann")
    store.submit("ann", t.task_id, GOOD, 1.0)
    store.skip("ann", store.next_task("ann").task_id, None)
    assert (store.progress("ann").done, store.progress("ann").total) == (1, 2)


def test_a_restart_loses_nothing(store: Store, tmp_path: Path) -> None:
    session = store.sign_in("ann", None, None)
    t = store.next_task("ann")
    store.submit("ann", t.task_id, GOOD, 2.5)
    reopened = Store(tmp_path / "studio.db")  # a new server process on the same folder
    assert reopened.annotator(session) == "ann"
    assert [(x.task_id, x.seconds) for x in reopened.labels()] == [("t0", 2.5)] * len(DIMENSIONS)
    assert reopened.next_task("ann").task_id == "t1"
    assert reopened.add_tasks([task(0), task(3)]) == 1  # rebuilding a queue adds only new tasks


def test_concurrent_submits_never_overwrite(tmp_path: Path) -> None:
    store = Store(tmp_path / "studio.db")
    store.add_tasks([task(i, needed=8) for i in range(3)])
    names = [f"a{i}" for i in range(8)]
    barrier = threading.Barrier(len(names))
    errors: list[BaseException] = []

    def label_all(who: str) -> None:
        try:
            own = Store(tmp_path / "studio.db")  # each annotator's request has its own connection
            while (t := own.next_task(who)) is not None:
                barrier.wait(timeout=30) if t.task_id == "t0" else None  # all submit t0 at once
                own.submit(who, t.task_id, {d: ("Bad", f"{who} says") for d in DIMENSIONS}, 1.0)
        except BaseException as error:  # noqa: BLE001 - surfaced below
            errors.append(error)

    threads = [threading.Thread(target=label_all, args=(n,)) for n in names]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    labels = store.labels()
    assert len(labels) == 3 * len(names) * len(DIMENSIONS)
    assert all(x.reason == f"{x.annotator} says" for x in labels)


def test_unknown_session_and_wrong_token_are_401(store: Store) -> None:
    for session in (None, "", "nope"):
        with pytest.raises(InputError) as refused:
            store.annotator(session)
        assert refused.value.status == 401
    tokens = {"ann": "s3cret"}
    for name, token in (("ann", "wrong"), ("ann", None), ("eve", "s3cret")):
        with pytest.raises(InputError) as refused:
            store.sign_in(name, token, tokens)
        assert refused.value.status == 401
    assert store.annotator(store.sign_in("ann", "s3cret", tokens)) == "ann"
