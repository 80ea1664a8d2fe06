"""jobs/annotate.py end to end without Ray: queue → simulated annotators over HTTP → aggregate."""

from pathlib import Path

import pytest

from ipo_ray.data import TableKind, read_table, write_table

from .conftest import NUM_CLIPS, WorldSet, candidates, live_server, settings_for

pytestmark = pytest.mark.timeout(120)


def test_queue_simulate_aggregate(job, world_set: WorldSet, tmp_path: Path) -> None:  # noqa: ANN001
    table = candidates([(f"clip-{i:05d}", f"clip-{i:05d}") for i in range(NUM_CLIPS)], world_set.folder)
    write_table(table, world_set.folder / f"candidates-{tmp_path.name}.parquet", TableKind.CANDIDATES)
    config = [f"annotate.dir={tmp_path}", "world.annotators.seed=5"]
    prompts = str(world_set.folder / "prompts.parquet")
    cands = str(world_set.folder / f"candidates-{tmp_path.name}.parquet")
    assert "8 tasks added" in job("queue", "--candidates", cands, "--prompts", prompts, *config)
    assert "0 tasks added" in job("queue", "--candidates", cands, "--prompts", prompts, *config)  # idempotent
    with live_server(settings_for(tmp_path)) as url:
        assert "'ann2': 8" in job("simulate", "--url", url, "--prompts", prompts, *config)
    printed = job("aggregate", "--out", str(tmp_path / "export"), *config)
    assert "from 8/8 complete tasks" in printed and "Fleiss' kappa pointwise/faithfulness" in printed
    ours = read_table(tmp_path / "export" / "labels.parquet", TableKind.LABELS)
    seed = read_table(world_set.folder / "labels.parquet", TableKind.LABELS)
    assert ours.num_rows == sum(1 for k in seed["kind"].to_pylist() if k == "pointwise")
