import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from ipo_ray.critic.evaluate import oracle_verdicts
from ipo_ray.critic.sft import examples_from_labels
from ipo_ray.data import TableKind, read_table, write_table
from ipo_ray.data import columns as col
from ipo_ray.world.annotators import make_annotators
from ipo_ray.world.merge import merge_seed_sets
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import build_seed_set

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("sets")
    for name, seed in (("renders", 3), ("others", 4)):
        build_seed_set(
            out / name,
            num_clips=8,
            num_pairs=4,
            defect_rate=0.6,
            strength_range=(0.2, 1.0),
            seed=seed,
            annotators=make_annotators(3, seed=1),
            settings=RenderSettings(),
        )
    return out / "renders", out / "others"


def test_merged_set_keeps_every_row_with_ids_that_never_collide(two_sets, tmp_path):
    a, b = two_sets
    n_labels, n_prompts = merge_seed_sets([a, b], tmp_path / "mixed")
    sources = [read_table(s / "labels.parquet", TableKind.LABELS) for s in (a, b)]
    merged = read_table(tmp_path / "mixed" / "labels.parquet", TableKind.LABELS)
    assert n_labels == merged.num_rows == sum(t.num_rows for t in sources)
    # Both sets number their clips from clip-00000: unprefixed, their ids would collide.
    assert set(sources[0][col.VIDEO_ID].to_pylist()) & set(sources[1][col.VIDEO_ID].to_pylist())
    ids = merged[col.LABEL_ID].to_pylist()
    assert len(set(ids)) == len(ids)
    assert sum(i.startswith("renders:") for i in ids) == sources[0].num_rows
    pairs = [r for r in merged.to_pylist() if r[col.KIND] == "pairwise"]
    assert pairs and all(r[col.VIDEO_ID_B].startswith(("renders:", "others:")) for r in pairs)
    # Videos stay where they are; the verdicts and votes are the sources' own.
    assert merged[col.VIDEO_PATH].to_pylist() == sum((t[col.VIDEO_PATH].to_pylist() for t in sources), [])
    assert merged[col.VERDICT].to_pylist() == sum((t[col.VERDICT].to_pylist() for t in sources), [])
    prompts = read_table(tmp_path / "mixed" / "prompts.parquet", TableKind.PROMPTS)
    assert prompts.num_rows == n_prompts == 2 * (8 + 4)
    # The oracle finds every merged label's spec by its caption.
    examples = examples_from_labels(merged)
    assert len(oracle_verdicts(examples[:6], prompts, RenderSettings())) == 6


def test_merging_refuses_what_it_cannot_join(two_sets, tmp_path):
    a, b = two_sets
    with pytest.raises(ValueError, match="at least two"):
        merge_seed_sets([a], tmp_path / "one")
    with pytest.raises(ValueError, match="distinct folder names"):
        merge_seed_sets([a, a], tmp_path / "twice")
    # A caption whose spec differs between the sets: the oracle could not tell which one is meant.
    clash = tmp_path / "clash"
    clash.mkdir()
    prompts = read_table(b / "prompts.parquet", TableKind.PROMPTS).to_pylist()
    prompts[0][col.TEXT] = read_table(a / "prompts.parquet", TableKind.PROMPTS)[col.TEXT][0].as_py()
    prompts[0][col.SPEC_JSON] = json.dumps({"not": "the same spec"})
    schema = read_table(b / "prompts.parquet", TableKind.PROMPTS).schema
    write_table(pa.Table.from_pylist(prompts, schema=schema), clash / "prompts.parquet", TableKind.PROMPTS)
    labels = read_table(b / "labels.parquet", TableKind.LABELS)
    write_table(labels, clash / "labels.parquet", TableKind.LABELS)
    with pytest.raises(ValueError, match="two different specs"):
        merge_seed_sets([a, clash], tmp_path / "clashed")
    assert not (tmp_path / "clashed" / "labels.parquet").exists()


def test_the_job_merges_and_names_a_missing_set(two_sets, tmp_path):
    a, b = two_sets
    job = [sys.executable, str(ROOT / "jobs" / "build_seed_set.py"), f"run.root={tmp_path}", "run.name=mixed"]
    done = subprocess.run([*job, "--merge", str(a), str(b)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "from 2 seed sets" in done.stdout
    assert (tmp_path / "mixed" / "labels.parquet").is_file()
    missing = tmp_path / "nowhere"
    done = subprocess.run(
        [*job, "run.name=bad", "--merge", str(a), str(missing)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and str(missing) in done.stderr
    assert not (tmp_path / "bad" / "labels.parquet").exists()
