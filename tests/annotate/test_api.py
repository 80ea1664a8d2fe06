"""The studio's HTTP API in-process (FastAPI's test client): sign-in, tasks, videos, refusals."""

import dataclasses
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ipo_ray.annotate.app import StudioSettings, build_api
from ipo_ray.annotate.store import Store
from ipo_ray.annotate.tasks import Task, check_prompt_lengths
from ipo_ray.vocab import DIMENSIONS

from .conftest import settings_for

ALL_GOOD = {"answers": dict.fromkeys(DIMENSIONS, "Good")}


def signed_in(client: TestClient, name: str, token: str | None = None) -> TestClient:
    response = client.post("/api/session", json={"name": name, "token": token})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['session']}"
    return client


@pytest.fixture
def api(studio: tuple[StudioSettings, Store]) -> TestClient:
    return TestClient(build_api(studio[0]))


def test_page_and_static_files_are_served(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="/static/studio.js"' in page.text and "__BASE__" not in page.text
    assert api.get("/static/studio.js").headers["content-type"].startswith("text/javascript")
    assert api.get("/static/../app.py").status_code == 404


def test_label_flow_stores_one_row_per_dimension(api: TestClient, studio: tuple) -> None:
    client = signed_in(api, "ann")
    body = client.get("/api/next").json()
    task = body["task"]
    assert body["progress"] == {"done": 0, "total": 12}
    assert task["kind"] == "pointwise" and "gold" not in task
    answers = {
        "answers": {**ALL_GOOD["answers"], "faithfulness": "Bad"},
        "reasons": {"faithfulness": "blurry"},
    }
    done = client.post(f"/api/tasks/{task['task_id']}/label", json=answers)
    assert done.status_code == 200 and done.json()["progress"] == {"done": 1, "total": 12}
    rows = [(x.annotator, x.dimension, x.answer, x.reason) for x in studio[1].labels()]
    assert ("ann", "faithfulness", "Bad", "blurry") in rows and len(rows) == len(DIMENSIONS)


def test_missing_reason_names_the_field_and_stores_nothing(api: TestClient, studio: tuple) -> None:
    client = signed_in(api, "ann")
    task = client.get("/api/next").json()["task"]
    answers = {**ALL_GOOD["answers"], "motion_smoothness": "Normal"}
    refused = client.post(f"/api/tasks/{task['task_id']}/label", json={"answers": answers, "reasons": {}})
    assert refused.status_code == 422
    (problem,) = refused.json()["detail"]
    assert problem["loc"] == ["body", "reasons", "motion_smoothness"] and "reason" in problem["msg"]
    assert studio[1].labels() == []
    assert client.get("/api/next").json()["task"]["task_id"] == task["task_id"]  # still open


def test_pairwise_non_tie_needs_a_reason(api: TestClient, studio: tuple) -> None:
    store: Store = studio[1]
    pair = next(t for t in store.tasks() if t.kind == "pairwise")
    client = signed_in(api, "ann")
    for t in store.tasks():
        if t == pair:
            break
        client.post(f"/api/tasks/{client.get('/api/next').json()['task']['task_id']}/skip", json={})
    assert client.get("/api/next").json()["task"]["choices"] == ["A", "tie", "B"]
    answers = {"answers": {d: "A" for d in DIMENSIONS}, "reasons": {"faithfulness": "B flickers"}}
    refused = client.post(f"/api/tasks/{pair.task_id}/label", json=answers)
    assert refused.status_code == 422 and len(refused.json()["detail"]) == 2
    ties = {"answers": {d: "tie" for d in DIMENSIONS}}
    assert client.post(f"/api/tasks/{pair.task_id}/label", json=ties).status_code == 200


def test_label_for_a_task_not_assigned_is_409(api: TestClient) -> None:
    ann = signed_in(api, "ann")
    task_id = ann.get("/api/next").json()["task"]["task_id"]
    other = signed_in(TestClient(api.app), "bob")
    assert other.post(f"/api/tasks/{task_id}/label", json=ALL_GOOD).status_code == 409
    assert other.get(f"/api/tasks/{task_id}/video/a").status_code == 409
    assert ann.post(f"/api/tasks/{task_id}/label", json=ALL_GOOD).status_code == 200
    assert ann.post(f"/api/tasks/{task_id}/label", json=ALL_GOOD).status_code == 409  # twice
    assert ann.post("/api/tasks/no-such-task/label", json=ALL_GOOD).status_code == 404


def test_unknown_token_is_401(api: TestClient, tmp_path: Path) -> None:
    assert api.get("/api/next").status_code == 401
    api.headers["Authorization"] = "Bearer made-up"
    refused = api.get("/api/next")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"ann": "t0ken"}))
    guarded = TestClient(build_api(settings_for(tmp_path / "auth", str(tokens))))
    assert guarded.post("/api/session", json={"name": "ann", "token": "wrong"}).status_code == 401
    assert guarded.post("/api/session", json={"name": "ann"}).status_code == 401
    assert signed_in(guarded, "ann", "t0ken").get("/api/next").status_code == 200


def test_video_is_served_as_mp4_in_both_forms(api: TestClient, studio: tuple) -> None:
    client = signed_in(api, "ann")
    task = client.get("/api/next").json()["task"]
    original = client.get(f"/api/tasks/{task['task_id']}/video/a", params={"form": "original"})
    assert original.headers["content-type"] == "video/mp4"
    assert original.content == Path(studio[1].task(task["task_id"]).video_path).read_bytes()
    copy = client.get(f"/api/tasks/{task['task_id']}/video/a")
    assert copy.status_code == 200 and copy.headers["content-type"] == "video/mp4"
    assert copy.content[4:8] == b"ftyp" and copy.content != original.content
    assert client.get(f"/api/tasks/{task['task_id']}/video/b").status_code == 404  # pointwise


def test_broken_video_is_400_and_the_skip_reassigns_it(tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    store = Store(tmp_path / "studio.db")
    store.add_tasks(
        [Task("t", "seed", "pointwise", "p", "A red square.", "v", str(tmp_path / "bad.mp4"), None, None, 1)]
    )
    api = TestClient(build_api(settings_for(tmp_path)))
    ann = signed_in(api, "ann")
    assert ann.get("/api/next").json()["task"]["task_id"] == "t"
    refused = ann.get("/api/tasks/t/video/a")
    assert refused.status_code == 400 and "video a" in refused.json()["detail"]
    assert (
        ann.post("/api/tasks/t/skip", json={"problem": "video A failed to load"}).json()["progress"]["total"]
        == 0
    )
    assert store.skips()[0].problem == "video A failed to load"
    assert signed_in(TestClient(api.app), "bob").get("/api/next").json()["task"]["task_id"] == "t"


def test_prompt_is_returned_whole_as_text(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script> " + "a very long prompt " * 20
    store = Store(tmp_path / "studio.db")
    store.add_tasks([Task("t", "seed", "pointwise", "p", evil, "v", "/nope.mp4", None, None, 1)])
    prompt = (
        signed_in(TestClient(build_api(settings_for(tmp_path))), "ann")
        .get("/api/next")
        .json()["task"]["prompt"]
    )
    assert prompt == evil  # never cut (the queue caps lengths); the page sets textContent


def test_queue_refuses_prompts_longer_than_the_cap() -> None:
    long = Task("t", "seed", "pointwise", "p7", "x" * 81, "v", "/v.mp4", None, None, 1)
    check_prompt_lengths([dataclasses.replace(long, prompt="x" * 80)], 80)
    with pytest.raises(ValueError, match="'p7' has 81 characters.*max_prompt_chars=80"):
        check_prompt_lengths([long], 80)


def test_too_long_reason_is_refused(api: TestClient) -> None:
    client = signed_in(api, "ann")
    task_id = client.get("/api/next").json()["task"]["task_id"]
    body = {"answers": {**ALL_GOOD["answers"], "faithfulness": "Bad"}, "reasons": {"faithfulness": "x" * 201}}
    refused = client.post(f"/api/tasks/{task_id}/label", json=body)
    assert refused.status_code == 422 and refused.json()["detail"][0]["type"] == "too_long"


@pytest.mark.parametrize(
    "body",
    [
        {"answers": {"faithfulness": "Good"}},  # dimensions missing
        {"answers": {**ALL_GOOD["answers"], "colour": "Good"}},  # unknown dimension
        {"answers": {**ALL_GOOD["answers"], "faithfulness": "A"}},  # a pairwise answer on a pointwise task
        {"answers": ALL_GOOD["answers"], "extra": 1},  # unknown field
        {"answers": ALL_GOOD["answers"], "seconds": -1},
    ],
)
def test_malformed_labels_are_422(api: TestClient, body: dict, studio: tuple) -> None:
    client = signed_in(api, "ann")
    task_id = client.get("/api/next").json()["task"]["task_id"]
    assert client.post(f"/api/tasks/{task_id}/label", json=body).status_code == 422
    assert studio[1].labels() == []


@pytest.mark.parametrize("name", ["", " " * 3, "x" * 65, "<b>"])
def test_bad_names_are_422(api: TestClient, name: str) -> None:
    assert api.post("/api/session", json={"name": name}).status_code == 422
