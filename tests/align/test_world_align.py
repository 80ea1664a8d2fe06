"""`align_generator` on the embedded world: real candidates from the shipped small checkpoint, trained
on a local Ray (2 CPUs, ≤ 0.5 per worker), exported in the world checkpoint format and sampled again."""

from pathlib import Path

import pyarrow as pa
import pytest
import torch

from ipo_ray.align.run import MANIFEST_FILE, AlignmentError, align_generator
from ipo_ray.config.align import AlignConfig
from ipo_ray.data import columns as col
from ipo_ray.data import make_table, write_table
from ipo_ray.generator.files import PROMPT_EMBEDS_DIR
from ipo_ray.generator.stage import generate_candidates
from ipo_ray.generator.world import WorldGenerator
from ipo_ray.generator.world_model import DEFAULT_CHECKPOINT, load_world_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

K = 4
PROMPTS = ["A small red circle glides slowly to the left.", "A large blue square moves up fast."]


@pytest.fixture(scope="module")
def stage(ray_cluster, tmp_path_factory) -> tuple[Path, pa.Table]:
    """A candidates stage directory written by the world backend (2 prompts × 4, 2 Euler steps)."""
    out = tmp_path_factory.mktemp("world-stage")
    prompts = make_table(
        [{col.PROMPT_ID: f"p{i}", col.TEXT: t, col.SOURCE: "world"} for i, t in enumerate(PROMPTS)], "prompts"
    )
    candidates = generate_candidates(
        prompts,
        out,
        backend="world",
        generator_kwargs={
            "model_path": str(DEFAULT_CHECKPOINT),
            "num_inference_steps": 2,
            "guidance_scale": 1.0,
        },
        num_candidates=K,
        round_index=0,
        seed=0,
        cpus_per_actor=0.5,
    )
    return out, candidates.sort_by(col.CANDIDATE_ID)


def _samples_table(stage_dir: Path, candidates: pa.Table) -> Path:
    """Every other candidate of a prompt desirable (reward 0.9, passes), the rest not (0.05)."""
    rows = []
    for i, c in enumerate(candidates.to_pylist()):
        good = i % 2 == 0
        rows.append(
            {
                col.CANDIDATE_ID: c[col.CANDIDATE_ID],
                col.PROMPT_ID: c[col.PROMPT_ID],
                col.PROMPT: PROMPTS[int(c[col.PROMPT_ID][1:])],
                col.LATENT_PATH: c[col.LATENT_PATH],  # relative to the stage directory, as written
                col.PROMPT_EMBEDS_PATH: f"{PROMPT_EMBEDS_DIR}/{c[col.PROMPT_ID]}.safetensors",
                col.REWARD: 0.9 if good else 0.05,
                col.DESIRABLE: good,
                col.PASSES: good,
                col.ROUND: 0,
            }
        )
    path = stage_dir / "samples.parquet"
    if path.exists():
        return path
    write_table(make_table(rows, "samples"), path, "samples")
    return path


def _pairs_table(stage_dir: Path, candidates: pa.Table) -> Path:
    """Per prompt, candidate 0 over 1 and 2 over 3."""
    by_prompt: dict[str, list[dict]] = {}
    for c in candidates.to_pylist():
        by_prompt.setdefault(c[col.PROMPT_ID], []).append(c)
    rows = []
    for pid, cands in by_prompt.items():
        for w, lo in ((cands[0], cands[1]), (cands[2], cands[3])):
            rows.append(
                {
                    col.PAIR_ID: f"{w[col.CANDIDATE_ID]}>{lo[col.CANDIDATE_ID]}",
                    col.PROMPT_ID: pid,
                    col.PROMPT: PROMPTS[int(pid[1:])],
                    col.WINNER_CANDIDATE_ID: w[col.CANDIDATE_ID],
                    col.LOSER_CANDIDATE_ID: lo[col.CANDIDATE_ID],
                    col.WINNER_LATENT_PATH: w[col.LATENT_PATH],
                    col.LOSER_LATENT_PATH: lo[col.LATENT_PATH],
                    col.WINNER_REWARD: 0.9,
                    col.LOSER_REWARD: 0.05,
                    col.ROUND: 0,
                }
            )
    path = stage_dir / "pairs.parquet"
    if path.exists():
        return path
    write_table(make_table(rows, "pairs"), path, "pairs")
    return path


def _changed(out_dir: Path) -> float:
    """Largest absolute weight change of the exported transformer against the shipped one."""
    new, old = load_world_model(out_dir)[0].transformer, load_world_model(DEFAULT_CHECKPOINT)[0].transformer
    return max((a - b).abs().max().item() for a, b in zip(new.parameters(), old.parameters(), strict=True))


def _sample(out_dir: Path, version: str) -> torch.Tensor:
    gen = WorldGenerator(out_dir, version=version, num_inference_steps=2, guidance_scale=1.0)
    clip = gen.denoise(gen.encode_prompt(PROMPTS[0]), [1, 2])
    assert clip.shape == (2, 3, 4, 16, 16) and torch.isfinite(clip).all()
    return clip


def test_kto_on_two_workers_exports_a_world_checkpoint_and_logs_to_mlflow(stage, tmp_path) -> None:
    mlflow = pytest.importorskip("mlflow")
    stage_dir, candidates = stage
    table = _samples_table(stage_dir, candidates)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.create_experiment("align-test")
    parent = client.create_run(experiment, run_name="round-1").info.run_id
    # The child of an attempt whose driver was killed: left RUNNING, to be marked KILLED.
    orphan = client.create_run(
        experiment, run_name="align-world-r1", tags={"mlflow.parentRunId": parent}
    ).info.run_id
    # 8 samples, 2 workers × 1 per micro-batch × 2 accumulated = a global batch of 4 for KTO's Q.
    cfg = AlignConfig(
        objective="kto", max_steps=3, batch_size=4, micro_batch=1, workers=2, lr=1e-4, checkpoint_every=2
    )
    out = tmp_path / "world-r1"
    manifest = align_generator(
        cfg,
        backend="world",
        generator_dir=DEFAULT_CHECKPOINT,
        table_path=table,
        out_dir=out,
        version="world-r1",
        parent_version="world-small-7829",
        tracking_uri=uri,
        mlflow_parent_run_id=parent,
    )
    assert (manifest["version"], manifest["parent_version"], manifest["steps"]) == (
        "world-r1",
        "world-small-7829",
        3,
    )
    assert manifest["data"]["rows"] == 2 * K and len(manifest["data"]["sha256"]) == 64
    assert {"train/loss", "kto/reference_point", "rewards/implicit_acc"} <= set(manifest["metrics"])
    assert (out / MANIFEST_FILE).is_file()

    # rank 0 logged every step into a child run of the round's run
    run = client.get_run(manifest["mlflow_run_id"])
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert (run.info.status, client.get_run(orphan).info.status) == ("FINISHED", "KILLED")
    for key in ("train/loss", "kto/reference_point", "rewards/implicit_acc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2, 3], key

    # the export is a world checkpoint: the next round's generator loads and samples it
    assert 0 < _changed(out)
    _sample(out, "world-r1")
    meta = load_world_model(out)[2]
    assert meta["training"]["alignment"][-1]["objective"] == "kto"

    # a second call with the same table returns the committed version without training
    assert (
        align_generator(
            cfg,
            backend="world",
            generator_dir=DEFAULT_CHECKPOINT,
            table_path=table,
            out_dir=out,
            version="world-r1",
        )
        == manifest
    )


def test_dpo_on_one_worker_trains_the_world_generator_from_pairs(stage, tmp_path) -> None:
    stage_dir, candidates = stage
    table = _pairs_table(stage_dir, candidates)
    cfg = AlignConfig(objective="dpo", max_steps=2, batch_size=2, micro_batch=2, workers=1, lr=1e-4)
    out = tmp_path / "world-dpo"
    manifest = align_generator(
        cfg, backend="world", generator_dir=DEFAULT_CHECKPOINT, table_path=table, out_dir=out, version="dpo"
    )
    assert manifest["data"]["rows"] == 4 and manifest["steps"] == 2 and 0 < _changed(out)
    assert {"rewards/margin", "rewards/implicit_acc", "train/loss"} <= set(manifest["metrics"])
    _sample(out, "dpo")


def test_rejection_sampling_trains_only_on_passing_samples(stage, tmp_path) -> None:
    stage_dir, candidates = stage
    table = _samples_table(stage_dir, candidates)
    # 4 of the 8 samples pass; a global step of 2 workers × 4 needs 8, which the filter leaves short.
    cfg = AlignConfig(objective="rs", max_steps=1, batch_size=8, micro_batch=4, workers=2)
    with pytest.raises(AlignmentError, match="4 samples rows to train on"):
        align_generator(
            cfg,
            backend="world",
            generator_dir=DEFAULT_CHECKPOINT,
            table_path=table,
            out_dir=tmp_path / "rs",
            version="rs",
        )
