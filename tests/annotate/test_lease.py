"""Leases: an open task whose annotator never returns goes back to the queue (clock injected, no sleeps)."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ipo_ray.annotate.app import build_api
from ipo_ray.annotate.store import Store
from ipo_ray.annotate.tasks import Task
from ipo_ray.critic.serve.inputs import InputError
from ipo_ray.vocab import DIMENSIONS

from .conftest import settings_for

GOOD = {d: ("Good", "") for d in DIMENSIONS}
LEASE_S = 600.0


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def one_task(needed: int = 1) -> Task:
    return Task("t0", "seed", "pointwise", "p", "A red square.", "v", "/v.mp4", None, None, needed)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Store:
    s = Store(tmp_path / "studio.db", lease_s=LEASE_S, clock=clock)
    s.add_tasks([one_task()])
    return s


def test_slot_is_held_during_the_lease_and_released_after(store: Store, clock: Clock) -> None:
    assert store.next_task("ann").task_id == "t0"
    clock.now += LEASE_S - 1
    assert store.next_task("bob") is None  # still ann's
    clock.now += 2
    assert store.next_task("bob").task_id == "t0"  # ann never came back: the slot went to bob
    store.submit("bob", "t0", GOOD, None)
    with pytest.raises(InputError) as late:
        store.submit("ann", "t0", GOOD, None)
    assert (
        late.value.status == 409 and "ran out" in late.value.detail and "went to another" in late.value.detail
    )
    with pytest.raises(InputError) as skip:
        store.skip("ann", "t0", None)
    assert skip.value.status == 409
    assert [x.annotator for x in store.labels()] == ["bob"] * len(DIMENSIONS)
    assert store.next_task("ann") is None  # the expired task is never given back to ann


def test_a_late_submit_nobody_needed_the_slot_for_is_kept(store: Store, clock: Clock) -> None:
    store.next_task("ann")
    clock.now += 10 * LEASE_S
    store.submit("ann", "t0", GOOD, None)  # expired, but nobody took the slot: the label is welcome
    assert len(store.labels()) == len(DIMENSIONS)


def test_a_reload_renews_the_lease(store: Store, clock: Clock) -> None:
    store.next_task("ann")
    clock.now += LEASE_S - 1
    assert store.next_task("ann").task_id == "t0"  # the page reloads: ann is back
    clock.now += LEASE_S - 1
    assert store.next_task("bob") is None


def test_only_as_many_stale_leases_expire_as_the_new_holder_needs(tmp_path: Path, clock: Clock) -> None:
    store = Store(tmp_path / "s.db", lease_s=LEASE_S, clock=clock)
    store.add_tasks([one_task(needed=2)])
    store.next_task("ann")
    clock.now += 1
    store.next_task("bob")
    clock.now += LEASE_S + 1
    assert store.next_task("cat").task_id == "t0"  # takes ann's slot (the older lease)
    store.submit("bob", "t0", GOOD, None)  # bob's stale lease was not needed: kept
    with pytest.raises(InputError):
        store.submit("ann", "t0", GOOD, None)


def test_late_submit_through_the_api_is_409_with_the_reason(tmp_path: Path, clock: Clock) -> None:
    Store(tmp_path / "studio.db").add_tasks([one_task()])
    settings = settings_for(tmp_path)
    app = build_api(settings, clock=clock)
    ann, bob = TestClient(app), TestClient(app)
    for client, name in ((ann, "ann"), (bob, "bob")):
        client.headers["Authorization"] = (
            "Bearer " + client.post("/api/session", json={"name": name}).json()["session"]
        )
    assert ann.get("/api/next").json()["task"]["task_id"] == "t0"
    clock.now += settings.lease_minutes * 60 + 1
    assert bob.get("/api/next").json()["task"]["task_id"] == "t0"
    refused = ann.post("/api/tasks/t0/label", json={"answers": dict.fromkeys(DIMENSIONS, "Good")})
    assert refused.status_code == 409
    assert "ran out (lease of 30 minutes)" in refused.json()["detail"]
