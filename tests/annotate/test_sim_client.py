"""End to end over real HTTP: simulated annotators label the world set through the studio, and the
aggregated seed set equals what the seed builder produced for the same items and noise."""

import json
from pathlib import Path

import pytest

from ipo_ray.annotate.aggregate import aggregate, write_export
from ipo_ray.annotate.sim_client import run_simulated_annotators
from ipo_ray.annotate.store import Store
from ipo_ray.annotate.tasks import GoldItem, gold_tasks, mix_gold
from ipo_ray.data import TableKind, read_table
from ipo_ray.data import columns as col
from ipo_ray.vocab import DIMENSIONS
from ipo_ray.world.prompts import spec_from_json

from .conftest import NUM_CLIPS, NUM_PAIRS, WorldSet, live_server, settings_for

pytestmark = pytest.mark.timeout(120)


def _specs(world_set: WorldSet) -> dict:
    prompts = read_table(world_set.folder / "prompts.parquet", TableKind.PROMPTS).to_pylist()
    return {p[col.PROMPT_ID]: spec_from_json(p[col.SPEC_JSON]) for p in prompts}


def _key(row: dict) -> tuple:
    return row[col.VIDEO_ID], row[col.VIDEO_ID_B], row[col.DIMENSION]


_COMPARED = (col.KIND, col.VERDICT, col.REASON, col.CERTAINTY, col.PROMPT, col.VIDEO_PATH, col.VIDEO_PATH_B)
_VOTES = (col.VOTES_GOOD, col.VOTES_NORMAL, col.VOTES_BAD, col.VOTES_A, col.VOTES_B, col.VOTES_TIE)


def test_studio_reproduces_the_seed_builder(world_set: WorldSet, tmp_path: Path) -> None:
    store = Store(tmp_path / "studio.db")
    store.add_tasks(world_set.tasks)
    with live_server(settings_for(tmp_path)) as url:
        done = run_simulated_annotators(url, world_set.annotators, _specs(world_set), world_set.settings)
    assert done == {a.annotator_id: NUM_CLIPS + NUM_PAIRS for a in world_set.annotators}

    result = aggregate(store)
    expected = read_table(world_set.folder / "labels.parquet", TableKind.LABELS).to_pylist()
    got = {_key(r): r for r in result.labels}
    assert len(got) == len(expected) > 0
    for row in expected:
        mine = got[_key(row)]
        assert {c: mine[c] for c in _COMPARED + _VOTES} == {c: row[c] for c in _COMPARED + _VOTES}, _key(row)
    # Flagged for review: the same (item, dimension)s, with the same votes.
    flagged = [json.loads(line) for line in (world_set.folder / "review.jsonl").read_text().splitlines()]
    item_of = {t.task_id: t.video_id.removesuffix("-a") for t in world_set.tasks}
    assert sorted((item_of[r["task"]], r["dimension"], r["votes"]) for r in result.review) == sorted(
        (r["item"], r["dimension"], r["votes"]) for r in flagged
    )
    report = result.report
    assert report.complete == report.tasks == NUM_CLIPS + NUM_PAIRS
    assert set(report.kappa) == {f"{k}/{d}" for k in ("pointwise", "pairwise") for d in DIMENSIONS}
    assert all(-1.0 <= k <= 1.0 for k in report.kappa.values())

    write_export(result, tmp_path / "export")
    labels = read_table(tmp_path / "export" / "labels.parquet", TableKind.LABELS)
    annotations = read_table(tmp_path / "export" / "annotations.parquet", TableKind.LABELS)
    assert labels.num_rows == len(expected)
    assert annotations.num_rows == 3 * (NUM_CLIPS + NUM_PAIRS) * 3
    assert set(annotations[col.ANNOTATOR].to_pylist()) == {"ann0", "ann1", "ann2"}


def test_gold_accuracy_per_annotator(world_set: WorldSet, tmp_path: Path) -> None:
    # Known answers of clip 0: the builder's majority on faithfulness, and a wrong one on semantics.
    expected = read_table(world_set.folder / "labels.parquet", TableKind.LABELS).to_pylist()
    truth = {r[col.DIMENSION]: r[col.VERDICT] for r in expected if r[col.VIDEO_ID] == "clip-00000"}
    known = {"faithfulness": truth["faithfulness"], "semantic_consistency": "Bad"}
    queue = world_set.tasks[:4]
    golds = gold_tasks([GoldItem("clip-00000", None, known)], queue)
    mixed = mix_gold(queue, golds, every=2)
    assert [t.task_id for t in mixed] == [t.task_id for t in queue[:2]] + ["gold-clip-00000"] + [
        t.task_id for t in queue[2:]
    ]
    store = Store(tmp_path / "studio.db")
    store.add_tasks(mixed)
    with live_server(settings_for(tmp_path)) as url:
        run_simulated_annotators(url, world_set.annotators, _specs(world_set), world_set.settings)
    report = aggregate(store).report
    given: dict[str, dict[str, str]] = {}
    for x in store.labels():
        if x.task_id == "gold-clip-00000":
            given.setdefault(x.annotator, {})[x.dimension] = x.answer
    assert report.gold_answers == {"ann0": 2, "ann1": 2, "ann2": 2}
    assert report.gold_accuracy == {
        who: sum(answers[d] == known[d] for d in known) / 2 for who, answers in given.items()
    }
    assert report.tasks == 4 and report.complete == 4  # gold tasks are not voted
