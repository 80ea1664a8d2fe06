"""The label stage keeps every sampled answer; the refresh turns them into SRPO pairs."""

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ipo_ray.config import load_config
from ipo_ray.critic.srpo import read_pairs
from ipo_ray.data import columns as col
from ipo_ray.data import read_table, write_table
from ipo_ray.loop import refresh
from ipo_ray.loop.labelling import label_pointwise
from ipo_ray.loop.run_dir import RunDir
from ipo_ray.loop.stages import LABEL, RoundContext
from ipo_ray.vocab import DIMENSIONS

# Four samples per question: three Good (certainty 0.75), then one unparseable.
TEXTS = ["Good. Sharp.", "Good. Sharp.", "Good.", "Goo"]


def _score(path: str, prompt: str) -> dict[str, Any]:
    del path, prompt
    answers = [{"text": t, "verdict": "Good" if t != "Goo" else None} for t in TEXTS]
    judgement = {
        "verdict": "Good",
        "reason": "Sharp.",
        "votes": {"Good": 3, "Normal": 0, "Bad": 0},
        "certainty": 0.75,
        "samples": 4,
        "unparseable": 1,
        "answers": answers,
    }
    return {"dimensions": dict.fromkeys(DIMENSIONS, judgement)}


def _labelled(tmp_path: Path) -> tuple[RoundContext, pa.Table]:
    ids = ["c0", "c1"]
    candidates = pa.table(
        {col.CANDIDATE_ID: ids, col.PROMPT: ["A red circle."] * 2, col.VIDEO_PATH: [f"{c}.mp4" for c in ids]}
    )
    labelled = label_pointwise(_score, candidates, tmp_path, "v0", max_workers=2)
    cfg = load_config(overrides=["loop.srpo.preference_loss=true", "loop.srpo.pairs_per_question=3"])
    ctx = RoundContext(cfg, RunDir(tmp_path / "run"), 1, tmp_path, tmp_path, "v0", tmp_path, None)
    write_table(labelled.labels, ctx.dir(LABEL) / "labels.parquet", "labels")
    write_table(labelled.answers, ctx.dir(LABEL) / "answers.parquet", "critic_answers")
    return ctx, labelled.labels


def test_label_stage_keeps_every_sample_and_refresh_pairs_them(tmp_path: Path) -> None:
    ctx, labels = _labelled(tmp_path)
    answers = read_table(ctx.dir(LABEL) / "answers.parquet", "critic_answers")
    assert answers.num_rows == 2 * len(DIMENSIONS) * len(TEXTS)
    first = answers.slice(0, 4).to_pylist()
    assert [a[col.ANSWER_TEXT] for a in first] == TEXTS and first[3][col.ANSWER_VERDICT] is None
    assert set(answers[col.LABEL_ID].to_pylist()) == set(labels[col.LABEL_ID].to_pylist())

    pairs = read_pairs(refresh._write_srpo_pairs(ctx, labels, tmp_path))
    # Per question: 2 distinct Good texts vs the unparseable one → min(cap 3, max(2, 1)) = 2 pairs.
    assert len(pairs) == 2 * len(DIMENSIONS) * 2
    assert {(p.chosen, p.rejected) for p in pairs} == {("Good. Sharp.", "Goo"), ("Good.", "Goo")}


def test_refresh_names_the_fix_when_a_run_has_no_answers(tmp_path: Path) -> None:
    ctx, labels = _labelled(tmp_path)
    (ctx.dir(LABEL) / "answers.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="loop.srpo.preference_loss=false"):
        refresh._write_srpo_pairs(ctx, labels, tmp_path)


def test_a_judge_first_refresh_keeps_pointwise_srpo_pairs(tmp_path: Path) -> None:
    ctx, labels = _labelled(tmp_path)
    pairs = read_pairs(refresh._write_srpo_pairs(ctx, labels, tmp_path, judge_first=True))
    assert len(pairs) == 2 * len(DIMENSIONS) * 2  # all pointwise here: none dropped
    assert refresh._write_pair_thinking(ctx, labels, tmp_path) is None  # no pairwise pseudo-labels
