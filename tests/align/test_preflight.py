"""Pre-flight: a table's files are checked on the driver, errors name the row, id, column and file."""

from pathlib import Path

import pyarrow as pa
import pytest
import torch

from ipo_ray.align.preflight import PreflightError, check_training_table
from ipo_ray.data import columns as col
from ipo_ray.data import make_table
from ipo_ray.generator.files import save_latents, save_prompt_embeds

SHAPE = (3, 4, 16, 16)


def _stage(root: Path, n: int = 3) -> pa.Table:
    """A samples table with paths relative to ``root``, as the generation stage writes them."""
    save_prompt_embeds(
        root / "prompt_embeds" / "p0.safetensors", torch.zeros(32, 128), prompt="p", version="v"
    )
    rows = []
    for i in range(n):
        save_latents(root / "latents" / f"c{i}.safetensors", torch.zeros(SHAPE), version="v", seed=i)
        rows.append(
            {
                col.CANDIDATE_ID: f"c{i}",
                col.PROMPT_ID: "p0",
                col.PROMPT: "p",
                col.LATENT_PATH: f"latents/c{i}.safetensors",
                col.PROMPT_EMBEDS_PATH: "prompt_embeds/p0.safetensors",
                col.REWARD: 0.9,
                col.DESIRABLE: True,
                col.PASSES: True,
                col.ROUND: 0,
            }
        )
    return make_table(rows, "samples")


def test_relative_paths_become_absolute_and_the_schema_is_kept(tmp_path) -> None:
    table = check_training_table(_stage(tmp_path), "samples", root=tmp_path, latent_shape=SHAPE)
    assert table.schema.equals(_stage(tmp_path).schema)
    assert table[col.LATENT_PATH][1].as_py() == str(tmp_path / "latents" / "c1.safetensors")
    assert table[col.PROMPT_EMBEDS_PATH][0].as_py() == str(tmp_path / "prompt_embeds" / "p0.safetensors")


def test_a_missing_latent_is_named_with_its_row_and_id(tmp_path) -> None:
    table = _stage(tmp_path)
    (tmp_path / "latents" / "c2.safetensors").unlink()
    with pytest.raises(
        PreflightError,
        match=r"samples table row 2 \(c2\), column 'latent_path': file .*c2.safetensors is missing",
    ):
        check_training_table(table, "samples", root=tmp_path)


def test_an_unreadable_file_is_named(tmp_path) -> None:
    table = _stage(tmp_path)
    (tmp_path / "latents" / "c1.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(PreflightError, match=r"row 1 \(c1\).*c1.safetensors is unreadable"):
        check_training_table(table, "samples", root=tmp_path)


def test_a_latent_of_another_shape_is_named(tmp_path) -> None:
    table = _stage(tmp_path)
    save_latents(tmp_path / "latents" / "c1.safetensors", torch.zeros(3, 4, 8, 8), version="v", seed=1)
    with pytest.raises(
        PreflightError, match=r"row 1 \(c1\).*shape \(3, 4, 8, 8\), expected \(3, 4, 16, 16\)"
    ):
        check_training_table(table, "samples", root=tmp_path, latent_shape=SHAPE)
    with pytest.raises(PreflightError, match=r"row 1 .*expected \(3, 4, 16, 16\) \(the shape of row 0\)"):
        check_training_table(table, "samples", root=tmp_path)


def test_a_pairs_table_checks_both_sides_and_its_prompt_embeddings(tmp_path) -> None:
    _stage(tmp_path)
    row = {
        col.PAIR_ID: "c0>c1",
        col.PROMPT_ID: "p9",
        col.PROMPT: "p",
        col.WINNER_CANDIDATE_ID: "c0",
        col.LOSER_CANDIDATE_ID: "c1",
        col.WINNER_LATENT_PATH: "latents/c0.safetensors",
        col.LOSER_LATENT_PATH: "latents/c1.safetensors",
        col.WINNER_REWARD: 0.9,
        col.LOSER_REWARD: 0.1,
        col.ROUND: 0,
    }
    with pytest.raises(PreflightError, match=r"pairs table row 0 \(c0>c1\).*p9.safetensors is missing"):
        check_training_table(make_table([row], "pairs"), "pairs", root=tmp_path)
    checked = check_training_table(make_table([row | {col.PROMPT_ID: "p0"}], "pairs"), "pairs", root=tmp_path)
    assert checked[col.LOSER_LATENT_PATH][0].as_py() == str(tmp_path / "latents" / "c1.safetensors")


def test_an_empty_table_is_refused(tmp_path) -> None:
    with pytest.raises(PreflightError, match="no rows"):
        check_training_table(make_table([], "samples"), "samples", root=tmp_path)
