"""LiFT's data correction: the stages with a stand-in critic, then `jobs/annotate.py correct` end to end
with a tiny critic trained for two steps per half (plumbing and counts, not accuracy)."""

import json
from pathlib import Path

import pytest

from ipo_ray.annotate.correction import correct, split_halves
from ipo_ray.annotate.store import Store
from ipo_ray.data import TableKind, read_table
from ipo_ray.data import columns as col

from .conftest import WorldSet

pytestmark = pytest.mark.timeout(120)


def seed_rows(world_set: WorldSet) -> list[dict]:
    return read_table(world_set.folder / "labels.parquet", TableKind.LABELS).to_pylist()


def test_split_is_by_item_and_covers_every_label(world_set: WorldSet) -> None:
    rows = seed_rows(world_set)
    first, second = split_halves(rows, seed=0)
    items = [{(r[col.VIDEO_ID], r[col.VIDEO_ID_B]) for r in half} for half in (first, second)]
    assert not items[0] & items[1] and len(first) + len(second) == len(rows)
    assert abs(len(items[0]) - len(items[1])) <= 1
    with pytest.raises(ValueError, match="at least 2 items"):
        split_halves(rows[:1], seed=0)


def test_stages_keep_agreements_and_send_disagreements_to_review(world_set: WorldSet) -> None:
    rows = seed_rows(world_set)
    slip = {**rows[0], col.VERDICT: "Good", col.REASON: "The square flickers."}  # a contradiction
    calls = []

    def judge_half(train: list[dict], judged: list[dict], half: int) -> list[str]:
        calls.append((half, {r[col.LABEL_ID] for r in train} & {r[col.LABEL_ID] for r in judged}))
        # Agrees except on faithfulness, where it says the other thing.
        flip = {"Good": "Bad", "Normal": "Good", "Bad": "Good", "A": "B", "B": "A", "tie": "A"}
        return [
            flip[r[col.VERDICT]] if r[col.DIMENSION] == "faithfulness" else r[col.VERDICT] for r in judged
        ]

    result = correct([slip, *rows[1:]], judge_half, seed=3)
    assert [h for h, _ in calls] == [0, 1] and all(
        not overlap for _, overlap in calls
    )  # never judges its own
    assert [r["rule"] for r in result.removed] == ["defect_in_good"]
    assert {r[col.DIMENSION] for r in result.review} == {"faithfulness"}
    assert {r[col.DIMENSION] for r in result.kept} == {"semantic_consistency", "motion_smoothness"}
    total = result.stages[-1]
    assert (total.given, total.kept, total.removed, total.changed, total.review) == (
        len(rows),
        len(result.kept),
        1,
        0,
        len(result.review),
    )
    assert result.stages[1].given + result.stages[2].given == len(rows) - 1


def test_correct_job_with_a_tiny_critic(job, world_set: WorldSet, tmp_path: Path) -> None:  # noqa: ANN001
    store = Store(tmp_path / "studio" / "studio.db")
    store.add_tasks(world_set.tasks)
    config = [
        f"annotate.dir={tmp_path / 'studio'}",
        "annotate.correct.steps=2",
        "annotate.correct.batch_size=4",
        "annotate.correct.minutes=null",
        "critic.train.describe_share=0.25",
        "video.num_frames=4",
    ]
    labels = str(world_set.folder / "labels.parquet")
    printed = job("correct", "--out", str(tmp_path / "out"), "--labels", labels, *config)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    stages = {s["stage"].split(" (")[0]: s for s in report["stages"]}
    rows = seed_rows(world_set)
    total = stages["total"]
    assert total["given"] == len(rows) and total["kept"] + total["removed"] + total["review"] == len(rows)
    assert stages["cross-label half 1"]["given"] + stages["cross-label half 2"]["given"] == len(rows)
    kept = read_table(tmp_path / "out" / "labels.parquet", TableKind.LABELS)
    assert kept.num_rows == total["kept"]
    review = [json.loads(line) for line in (tmp_path / "out" / "review.jsonl").read_text().splitlines()]
    assert len(review) == total["review"]
    queued = [t for t in store.tasks() if t.batch == "review"]
    items = {(r[col.VIDEO_ID], r[col.VIDEO_ID_B]) for r in review}
    assert report["review_tasks_queued"] == len(queued) == len(items)
    assert all(t.prompt_id and t.needed == 1 for t in queued)  # the studio's tasks gave prompt ids
    if queued:
        assert store.tasks()[0].batch == "review"  # in front of the queue
    for half in (1, 2):
        manifest = json.loads(
            (tmp_path / "out" / "critics" / f"half-{half}" / "critic" / "critic_manifest.json").read_text()
        )
        assert manifest["metrics"]["train/step"] == 2.0
    assert "cross-label half 1" in printed and "total" in printed and "review tasks queued" in printed
