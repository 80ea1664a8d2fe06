"""The candidates stage on a local Ray: K × N rows, resumable, inputs checked before actors start."""

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from ipo_ray.data import columns as col
from ipo_ray.data import make_table, manifest_path
from ipo_ray.generator import GeneratorError
from ipo_ray.generator.stage import generate_candidates
from ipo_ray.generator.tiny import TEXT_LEN

K, N = 2, 4


def _prompts(n: int = N) -> pa.Table:
    rows = [
        {col.PROMPT_ID: f"p{i}", col.TEXT: f"A small red circle number {i} glides left.", col.SOURCE: "world"}
        for i in range(n)
    ]
    return make_table(rows, "prompts")


def _kwargs(tiny_paths) -> dict:
    generator = {
        "model_path": str(tiny_paths["wan"]),
        "version": "tiny-wan-v0",
        "height": 16,
        "width": 16,
        "num_frames": 9,
        "num_inference_steps": 2,
        "guidance_scale": 3.0,
        "max_sequence_length": TEXT_LEN,
    }
    return {
        "backend": "wan",
        "generator_kwargs": generator,
        "num_candidates": K,
        "round_index": 0,
        "seed": 0,
        # 2 actors × 0.5 CPU leaves a core free on a 2-core machine (whole CPUs deadlock there).
        "num_actors": 2,
        "cpus_per_actor": 0.5,
    }


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_stage_writes_k_times_n_rows_and_resumes(ray_cluster, tiny_paths, tmp_path: Path) -> None:
    out = tmp_path / "candidates"
    table = generate_candidates(_prompts(), out, **_kwargs(tiny_paths))
    assert table.num_rows == K * N
    assert sorted(set(table[col.PROMPT_ID].to_pylist())) == [f"p{i}" for i in range(N)]
    for row in table.to_pylist():
        assert (out / row[col.LATENT_PATH]).is_file() and (out / row[col.VIDEO_PATH]).is_file()
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == N  # one prompt per batch

    # A killed run: one part never committed (its manifest missing), its files half there.
    lost = parts[0]
    manifest_path(lost).unlink()
    kept = {p: manifest_path(p).stat().st_mtime_ns for p in parts[1:]}
    again = generate_candidates(_prompts(), out, **_kwargs(tiny_paths))
    assert again.num_rows == K * N
    assert len(set(again[col.CANDIDATE_ID].to_pylist())) == K * N
    assert sorted(again[col.CANDIDATE_ID].to_pylist()) == sorted(table[col.CANDIDATE_ID].to_pylist())
    assert all(manifest_path(p).stat().st_mtime_ns == t for p, t in kept.items())  # untouched

    # A complete stage: a third run starts no actor and adds nothing.
    assert generate_candidates(_prompts(), out, **_kwargs(tiny_paths)).num_rows == K * N


def test_inputs_are_checked_before_any_actor_starts(tiny_paths, tmp_path: Path, monkeypatch) -> None:
    import ray

    # No Ray here: any attempt to start the stream would fail on an uninitialised cluster.
    monkeypatch.setattr(ray.data, "from_arrow", lambda *a, **k: pytest.fail("the stream started"))
    kwargs = _kwargs(tiny_paths)
    with pytest.raises(GeneratorError, match="num_candidates"):
        generate_candidates(_prompts(), tmp_path, **(kwargs | {"num_candidates": 0}))
    with pytest.raises(GeneratorError, match="bad prompts table"):
        generate_candidates(_prompts().drop_columns([col.TEXT]), tmp_path, **kwargs)
    with pytest.raises(GeneratorError, match="does not exist"):
        missing = kwargs["generator_kwargs"] | {"model_path": str(tmp_path / "nowhere")}
        generate_candidates(_prompts(), tmp_path, **(kwargs | {"generator_kwargs": missing}))
    with pytest.raises(GeneratorError, match="choose the backend"):
        generate_candidates(_prompts(), tmp_path, **(kwargs | {"backend": "cogvideox"}))
    with pytest.raises(GeneratorError, match="unknown generator backend"):
        generate_candidates(_prompts(), tmp_path, **(kwargs | {"backend": "sora"}))
    assert not any(tmp_path.iterdir())
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_retried_batch_writes_no_row_twice(tiny_paths, tmp_path: Path) -> None:
    from ipo_ray.data import committed_parts, read_parts
    from ipo_ray.generator.stage import GeneratorActor

    kwargs = _kwargs(tiny_paths)
    actor = GeneratorActor(kwargs["backend"], kwargs["generator_kwargs"], K, str(tmp_path), round_index=0)
    batch = pa.table({col.PROMPT_ID: ["p0"], col.TEXT: ["A circle."], col.SEED: pa.array([5], pa.int64())})
    # An actor that died before committing left files but no part: the retry commits the batch once.
    actor.generator.sample(["A circle."], [5], K, tmp_path, ["p0"])
    first = actor(batch)
    # An actor that died after committing: the retry finds the part and writes nothing.
    second = actor(batch)
    assert first.equals(second) and first.num_rows == K
    assert len(committed_parts(tmp_path)) == 1 and read_parts(tmp_path, "candidates").num_rows == K


def test_a_stage_directory_of_other_settings_is_refused(tiny_paths, tmp_path: Path) -> None:
    from ipo_ray.generator.stage import GeneratorActor, prompt_seed

    kwargs = _kwargs(tiny_paths)
    actor = GeneratorActor(kwargs["backend"], kwargs["generator_kwargs"], K, str(tmp_path), round_index=0)
    # What a run with this K committed for p0 (the actor is what the stream calls).
    seed = prompt_seed(kwargs["seed"], 0, "p0")
    actor(pa.table({col.PROMPT_ID: ["p0"], col.TEXT: ["A circle."], col.SEED: pa.array([seed], pa.int64())}))
    with pytest.raises(GeneratorError, match="some but not all candidates of 'p0'"):
        generate_candidates(_prompts(), tmp_path, **(kwargs | {"num_candidates": K + 1}))
    with pytest.raises(GeneratorError, match="would not generate"):
        generate_candidates(_prompts(), tmp_path, **(kwargs | {"seed": 1}))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_shipped_world_model_streams_through_the_stage(ray_cluster, tmp_path: Path) -> None:
    from ipo_ray.data import read_frames
    from ipo_ray.generator.world_model import DEFAULT_CHECKPOINT

    kwargs = {
        "backend": "world",
        "generator_kwargs": {"model_path": str(DEFAULT_CHECKPOINT), "num_inference_steps": 2},
        "num_candidates": K,
        "round_index": 0,
        "seed": 0,
        "num_actors": 1,
        "cpus_per_actor": 0.5,
    }
    table = generate_candidates(_prompts(2), tmp_path, **kwargs)
    assert table.num_rows == K * 2
    first = table.to_pylist()[0]
    assert read_frames(tmp_path / first[col.VIDEO_PATH], num_frames=None).shape == (4, 16, 16, 3)


def test_a_world_backend_pointed_at_a_pipeline_is_refused_before_actors(tiny_paths, tmp_path: Path) -> None:
    kwargs = _kwargs(tiny_paths) | {
        "backend": "world",
        "generator_kwargs": {"model_path": str(tiny_paths["wan"])},
    }
    with pytest.raises(GeneratorError, match="not a world generator checkpoint"):
        generate_candidates(_prompts(), tmp_path, **kwargs)
