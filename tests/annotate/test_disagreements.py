"""The disagreement view: critic verdicts (HTTP or local), the join with the human vote, the page's API,
relabelling as a review task, and the review vote replacing the old one."""

import json
from collections.abc import Sequence

import httpx
import pytest
from fastapi.testclient import TestClient

from ipo_ray.annotate.aggregate import aggregate
from ipo_ray.annotate.app import StudioSettings, build_api
from ipo_ray.annotate.critic_scoring import HttpCritic, LocalCritic
from ipo_ray.annotate.disagreements import find_disagreements
from ipo_ray.annotate.records import CriticVerdict
from ipo_ray.annotate.store import Store
from ipo_ray.critic.client import CriticClient
from ipo_ray.critic.judge import CriticRequest
from ipo_ray.vocab import DIMENSIONS

EVIL = "<img src=x onerror=alert(1)> the square is blurred"


def label(store: Store, who: str, answers: dict[str, str]) -> None:
    task = store.next_task(who)
    reasons = {d: ("" if a == "Good" else f"{who}: {d} looks off") for d, a in answers.items()}
    store.submit(who, task.task_id, {d: (a, reasons[d]) for d, a in answers.items()}, 1.0)


def verdict(
    task_id: str, dim: str, answer: str, certainty: float, reason: str = "critic says so"
) -> CriticVerdict:
    return CriticVerdict(task_id, dim, "v7", answer, reason, certainty, {answer: 1})


@pytest.fixture
def scored(studio: tuple[StudioSettings, Store]) -> tuple[StudioSettings, Store, list[str]]:
    """Two pointwise tasks voted by three annotators, and critic verdicts that disagree on two rows."""
    settings, store = studio
    good = dict.fromkeys(DIMENSIONS, "Good")
    for who in ("ann0", "ann1", "ann2"):
        label(store, who, good)
        label(store, who, {**good, "motion_smoothness": "Bad" if who != "ann2" else "Normal"})
    t0, t1 = (t.task_id for t in store.tasks()[:2])
    store.put_critic_verdicts(
        [
            verdict(t0, "semantic_consistency", "Good", 1.0),  # agrees
            verdict(t0, "faithfulness", "Bad", 0.5, EVIL),  # disagrees, less sure
            verdict(t1, "motion_smoothness", "Good", 0.875),  # disagrees, sure
            verdict(t1, "faithfulness", None, 0.0),  # no majority: nothing to disagree with
        ]
    )
    return settings, store, [t0, t1]


def test_disagreements_are_sorted_by_certainty_with_both_reasons(scored: tuple) -> None:
    _, store, (t0, t1) = scored
    rows = find_disagreements(store.tasks(), aggregate(store).voted, store.labels(), store.critic_verdicts())
    assert [(r.task.task_id, r.dimension, r.human_verdict, r.critic.verdict) for r in rows] == [
        (t1, "motion_smoothness", "Bad", "Good"),
        (t0, "faithfulness", "Good", "Bad"),
    ]
    assert [(h.annotator, h.answer, h.reason) for h in rows[0].humans] == [
        ("ann0", "Bad", "ann0: motion_smoothness looks off"),
        ("ann1", "Bad", "ann1: motion_smoothness looks off"),
        ("ann2", "Normal", "ann2: motion_smoothness looks off"),
    ]


def test_api_lists_serves_videos_and_queues_a_relabel_in_front(scored: tuple) -> None:
    settings, store, (t0, t1) = scored
    api = TestClient(build_api(settings))
    assert api.get("/api/disagreements").status_code == 401
    api.headers["Authorization"] = (
        "Bearer " + api.post("/api/session", json={"name": "rev"}).json()["session"]
    )
    page = api.get("/disagreements")
    assert page.status_code == 200 and 'src="/static/review.js"' in page.text
    items = api.get("/api/disagreements").json()["items"]
    assert [(i["task_id"], i["critic"]["certainty"]) for i in items] == [(t1, 0.875), (t0, 0.5)]
    assert items[1]["critic"]["reason"] == EVIL  # as text: review.js sets textContent
    assert items[0]["human"]["verdict"] == "Bad" and not items[0]["review_queued"]
    assert api.get(f"/api/disagreements/{t0}/video/a").headers["content-type"] == "video/mp4"
    other = store.tasks()[2].task_id
    assert api.get(f"/api/disagreements/{other}/video/a").status_code == 404  # not scored
    assert api.post(f"/api/disagreements/{other}/review").status_code == 404

    queued = api.post(f"/api/disagreements/{t1}/review").json()
    assert queued == {"task_id": f"review-{t1}", "queued": True}
    assert api.post(f"/api/disagreements/{t1}/review").json()["queued"] is False  # once per item
    assert api.get("/api/disagreements").json()["items"][0]["review_queued"]
    review = api.get("/api/next").json()["task"]
    assert review["task_id"] == f"review-{t1}"  # in front of the queue

    # The reviewer's vote replaces the item's earlier one.
    answers = {"answers": dict.fromkeys(DIMENSIONS, "Good")}
    assert api.post(f"/api/tasks/review-{t1}/label", json=answers).status_code == 200
    result = aggregate(store)
    assert (
        result.voted[(f"review-{t1}", "motion_smoothness")] == "Good"
        and (t1, "motion_smoothness") not in result.voted
    )
    assert result.report.superseded == 1


class FixedBackend:
    """A critic backend that answers every question with the same text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        self.calls += 1
        assert all(r.videos[0].shape[0] == 4 for r in requests)
        return [[self.text] * n for _ in requests]


def test_local_critic_votes_every_dimension(studio: tuple) -> None:
    tasks = studio[1].tasks()
    pair = next(t for t in tasks if t.kind == "pairwise")
    backend = FixedBackend("Bad. The square jitters.")
    verdicts = LocalCritic(backend, "v7", samples=3, num_frames=4, batch=2)([tasks[0], tasks[1], tasks[2]])
    assert backend.calls == 2 and len(verdicts) == 3 * len(DIMENSIONS)
    first = verdicts[0]
    assert (first.task_id, first.verdict, first.reason, first.certainty) == (
        tasks[0].task_id,
        "Bad",
        "The square jitters.",
        1.0,
    )
    pairwise = LocalCritic(FixedBackend("Bad."), "v7", 2, 4)([pair])
    assert {v.verdict for v in pairwise} == {None}  # "Bad" is no pairwise answer: unparseable, no verdict


def test_http_critic_reads_score_and_compare(studio: tuple) -> None:
    tasks = studio[1].tasks()
    pair = next(t for t in tasks if t.kind == "pairwise")
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, body["prompt"]))
        v = "A" if request.url.path == "/v1/compare" else "Normal"
        judged = {"verdict": v, "reason": "why", "votes": {v: 6}, "certainty": 0.75}
        return httpx.Response(
            200, json={"version": "v9", "samples": 8, "dimensions": dict.fromkeys(DIMENSIONS, judged)}
        )

    client = CriticClient("http://critic", transport=httpx.MockTransport(answer))
    verdicts = HttpCritic(client)([tasks[0], pair])
    assert [p for p, _ in seen] == ["/v1/score", "/v1/compare"]
    assert {(v.task_id, v.verdict, v.version, v.certainty) for v in verdicts} == {
        (tasks[0].task_id, "Normal", "v9", 0.75),
        (pair.task_id, "A", "v9", 0.75),
    }


def test_critic_job_stores_verdicts_of_the_voted_tasks(job, scored: tuple) -> None:  # noqa: ANN001
    settings, store, voted = scored
    config = [
        f"annotate.dir={settings.dir}",
        "critic.samples=1",
        "critic.temperature=0",
        "critic.max_new_tokens=8",
    ]
    printed = job("critic", *config)  # the shipped world critic, in this process
    verdicts = store.critic_verdicts()
    assert {v.task_id for v in verdicts} == set(voted) and len(verdicts) == 2 * len(DIMENSIONS)
    assert all(v.version and 0.0 <= v.certainty <= 1.0 for v in verdicts)
    assert "critic verdicts for 2 voted tasks" in printed and "/annotate/disagreements" in printed
