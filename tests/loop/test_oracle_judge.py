"""`loop.judge: oracle`: the world's noise-free oracle labels a round in the critic's place."""

import json
from pathlib import Path

import pyarrow as pa
import pytest

from ipo_ray.config import ConfigError, load_config
from ipo_ray.data import columns as col
from ipo_ray.data import read_table
from ipo_ray.data.video import write_mp4
from ipo_ray.loop import stages
from ipo_ray.loop.preferences import candidate_reward
from ipo_ray.loop.run_dir import RunDir
from ipo_ray.vocab import DIMENSIONS
from ipo_ray.world.prompts import sample_prompts, spec_to_json
from ipo_ray.world.render import render
from ipo_ray.world.spec import Defect, RenderSpec

ORACLE = ["loop.judge=oracle", "loop.srpo.trigger=never"]


def test_oracle_judge_is_refused_where_it_cannot_work() -> None:
    with pytest.raises(ConfigError, match="loop.srpo.trigger"):
        load_config(overrides=["loop.judge=oracle"])
    with pytest.raises(ConfigError, match="loop.label_mode"):
        load_config(overrides=[*ORACLE, "loop.label_mode=pairwise"])
    with pytest.raises(ConfigError, match="loop.judge: oracle judges world clips only"):
        load_config(
            overrides=[
                *ORACLE,
                "generator.backend=wan",
                "align.lambda_real=0",
                "generator.height=16",
                "generator.width=16",
                "generator.num_frames=5",
            ]
        )


def test_label_stage_with_the_oracle_judge_ranks_clean_clips_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two prompts, each with a clean render and one with a wrong colour (a semantic defect).
    specs = [spec for _, spec in sample_prompts(2, seed=3)]
    cfg = load_config(overrides=ORACLE)
    ctx = stages.RoundContext(cfg, RunDir(tmp_path / "run"), 1, tmp_path, tmp_path, "default", tmp_path, None)
    video_dir = ctx.dir(stages.GENERATE)
    rows = []
    for p, spec in enumerate(specs):
        for name, defects in (("clean", ()), ("wrong", (Defect("wrong_colour"),))):
            cid = f"p{p}-{name}"
            write_mp4(video_dir / f"{cid}.mp4", render(RenderSpec(spec, seed=p, defects=defects)), fps=8)
            rows.append({col.CANDIDATE_ID: cid, col.PROMPT_ID: f"p{p}", col.VIDEO_PATH: f"{cid}.mp4"})
    candidates = pa.Table.from_pylist(rows).append_column(col.PROMPT, pa.array(["a prompt"] * len(rows)))
    prompts = pa.table(
        {col.PROMPT_ID: ["p0", "p1"], col.SPEC_JSON: [spec_to_json(s) for s in specs], col.TEXT: ["a", "b"]}
    )
    monkeypatch.setattr(stages, "round_candidates", lambda _ctx: candidates)
    monkeypatch.setattr(stages, "round_prompts", lambda _ctx: prompts)

    result = stages.label_stage(ctx)

    labels = read_table(ctx.dir(stages.LABEL) / "labels.parquet", "labels")
    assert labels.num_rows == len(rows) * len(DIMENSIONS)
    assert set(labels[col.CRITIC_VERSION].to_pylist()) == {stages.ORACLE_JUDGE}
    assert set(labels[col.CERTAINTY].to_pylist()) == {1.0}
    # The labels are the oracle's own verdicts, so agreement is exact by construction.
    assert result.metrics["agreement/mean"] == 1.0 and result.metrics["critic_version"] == "oracle"
    semantic = {
        r[col.VIDEO_ID]: r[col.VERDICT]
        for r in labels.to_pylist()
        if r[col.DIMENSION] == "semantic_consistency"
    }
    assert all(semantic[f"p{p}-wrong"] != "Good" for p in range(2)), semantic
    point = json.loads((ctx.dir(stages.LABEL) / "votes.json").read_text())["point"]
    for p in range(2):
        assert candidate_reward(point[f"p{p}-clean"]) > candidate_reward(point[f"p{p}-wrong"])
