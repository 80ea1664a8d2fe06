"""Pre-flight check of a training table's files, on the driver, before any Ray Train worker starts.

A missing or corrupt latent found by a worker surfaces minutes later as a worker failure that
`FailureConfig` retries in vain; here every file the table names is opened once (the safetensors
header only, no tensor data) and a problem is raised naming the table row, its id, the column and
the file.

Relative paths are resolved against a root (the generation stage directory, where
`ipo_ray.generator.files` writes ``latents/`` and ``prompt_embeds/`` and records paths relative to
it), so the workers receive absolute paths and need no root.
"""

import os
from pathlib import Path

import pyarrow as pa
from safetensors import safe_open

from ipo_ray.data import columns as col
from ipo_ray.data.schemas import TableKind, as_table_kind
from ipo_ray.data.validation import validate_table

# (id column, latent columns) per trainable table kind.
_LATENT_COLUMNS: dict[TableKind, tuple[str, tuple[str, ...]]] = {
    TableKind.PAIRS: (col.PAIR_ID, (col.WINNER_LATENT_PATH, col.LOSER_LATENT_PATH)),
    TableKind.SAMPLES: (col.CANDIDATE_ID, (col.LATENT_PATH,)),
}


class PreflightError(ValueError):
    """A training table names a file that is missing, unreadable or of the wrong shape."""


def tensor_shape(path: Path) -> tuple[int, ...]:
    """The shape of the single tensor in a safetensors file, read from its header.

    Raises:
        OSError / safetensors errors: unreadable file. ValueError: not exactly one tensor.
    """
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())  # noqa: SIM118 (safe_open is not a mapping)
        if len(keys) != 1:
            raise ValueError(f"expected one tensor, found {keys}")
        return tuple(f.get_slice(keys[0]).get_shape())


def _resolve(root: Path, value: str) -> str:
    return str(Path(value) if os.path.isabs(value) else root / value)


def pairs_text_dir(root: str | os.PathLike[str], text_embeds_dir: str | os.PathLike[str] | None) -> Path:
    """Where a pairs table's prompt embeddings live: ``text_embeds_dir`` (relative to ``root``) or
    ``root/prompt_embeds``, the generation stage's folder."""
    if text_embeds_dir is None:
        return Path(root) / "prompt_embeds"
    return Path(_resolve(Path(root), str(text_embeds_dir)))


def _shape_or_raise(path: Path, where: str) -> tuple[int, ...]:
    if not path.is_file():
        raise PreflightError(f"{where}: file {path} is missing")
    try:
        return tensor_shape(path)
    except Exception as error:  # any reader failure means the same to the user: this file is bad
        raise PreflightError(f"{where}: file {path} is unreadable ({error})") from None


def check_training_table(
    table: pa.Table,
    kind: TableKind | str,
    *,
    root: str | os.PathLike[str],
    text_embeds_dir: str | os.PathLike[str] | None = None,
    latent_shape: tuple[int, ...] | None = None,
) -> pa.Table:
    """Validates a pairs or samples table and every file it names; returns it with absolute paths.

    Args:
        table: a ``pairs`` or ``samples`` table.
        kind: its kind.
        root: relative paths are taken relative to this folder.
        text_embeds_dir: pairs only: the folder of ``{prompt_id}.safetensors`` embeddings (relative
            to ``root`` if relative); default ``root/prompt_embeds``. Samples name theirs per row.
        latent_shape: the shape every latent must have (one sample, no batch dimension), e.g. the
            model's (3, F, H, W); None requires only that all latents agree with the first row.

    Returns:
        The table with latent (and, for samples, embedding) paths made absolute.

    Raises:
        PreflightError: an empty table, a missing, unreadable or differently shaped file; the message
            names the row, its id, the column and the file.
    """
    kind = as_table_kind(kind)
    if kind not in _LATENT_COLUMNS:
        raise PreflightError(f"alignment trains on pairs or samples tables, not {kind.value!r}")
    validate_table(table, kind)
    if table.num_rows == 0:
        raise PreflightError(f"the {kind.value} table has no rows: nothing to train on")
    root = Path(root)
    id_column, latent_columns = _LATENT_COLUMNS[kind]
    ids = table[id_column].to_pylist()
    resolved = {c: [_resolve(root, p) for p in table[c].to_pylist()] for c in latent_columns}
    if kind is TableKind.SAMPLES:
        embeds = [_resolve(root, p) for p in table[col.PROMPT_EMBEDS_PATH].to_pylist()]
        resolved[col.PROMPT_EMBEDS_PATH] = embeds
        embed_column = col.PROMPT_EMBEDS_PATH
    else:
        text_dir = pairs_text_dir(root, text_embeds_dir)
        embeds = [str(text_dir / f"{pid}.safetensors") for pid in table[col.PROMPT_ID].to_pylist()]
        embed_column = f"{col.PROMPT_ID} → {text_dir}/<prompt_id>.safetensors"

    expected = latent_shape
    for column in latent_columns:
        for row, path in enumerate(resolved[column]):
            where = f"{kind.value} table row {row} ({ids[row]}), column '{column}'"
            shape = _shape_or_raise(Path(path), where)
            if expected is None:
                expected = shape
            elif shape != tuple(expected):
                raise PreflightError(
                    f"{where}: file {path} holds latents of shape {shape}, expected {tuple(expected)}"
                    + ("" if latent_shape else " (the shape of row 0)")
                )
    seen: dict[str, tuple[int, ...]] = {}
    embed_shape: tuple[int, ...] | None = None
    for row, path in enumerate(embeds):
        if path not in seen:  # embeddings are cached per prompt: open each file once
            where = f"{kind.value} table row {row} ({ids[row]}), column '{embed_column}'"
            seen[path] = _shape_or_raise(Path(path), where)
            embed_shape = embed_shape or seen[path]
            if seen[path] != embed_shape or len(embed_shape) != 2:
                raise PreflightError(
                    f"{where}: file {path} holds prompt embeddings of shape {seen[path]}, expected "
                    f"(S, D) = {embed_shape} like the first prompt's"
                )
    for column, paths in resolved.items():
        index = table.schema.get_field_index(column)
        table = table.set_column(index, table.schema.field(index), pa.array(paths, pa.string()))
    return table


def check_real_table(
    table: pa.Table,
    *,
    root: str | os.PathLike[str],
    latent_shape: tuple[int, ...],
    text_shape: tuple[int, ...],
    batch_size: int,
) -> pa.Table:
    """Validates an encoded real-videos table and every file it names; returns it with absolute paths.

    The real videos ride in the preference micro-batches (one policy forward), so their latents must
    have the preference latents' shape and their caption embeddings the prompts' (S, D).

    Args:
        table: a ``real_videos`` table with ``latent_path`` and ``prompt_embeds_path`` on every row.
        root: relative paths are taken relative to this folder.
        latent_shape: the preference latents' shape (one sample). text_shape: their embeddings' (S, D).
        batch_size: real videos per micro-batch; the table must hold at least that many.

    Raises:
        PreflightError: too few rows, a clip not encoded, or a missing, unreadable or misshapen file;
            the message names the row, its video id, the column and the file.
    """
    validate_table(table, TableKind.REAL_VIDEOS)
    if table.num_rows < batch_size:
        raise PreflightError(
            f"the real_videos table has {table.num_rows} rows, fewer than align.real_batch_size="
            f"{batch_size}; add clips or lower real_batch_size"
        )
    root, ids = Path(root), table[col.VIDEO_ID].to_pylist()
    expected = {col.LATENT_PATH: tuple(latent_shape), col.PROMPT_EMBEDS_PATH: tuple(text_shape)}
    for column, shape in expected.items():
        paths = table[column].to_pylist()
        resolved = []
        for row, path in enumerate(paths):
            where = f"real_videos table row {row} ({ids[row]}), column '{column}'"
            if path is None:
                raise PreflightError(f"{where}: empty; encode the clips first (encode_real_videos)")
            resolved.append(_resolve(root, path))
            found = _shape_or_raise(Path(resolved[-1]), where)
            if found != shape:
                raise PreflightError(
                    f"{where}: file {resolved[-1]} holds a tensor of shape {found}, expected {shape} "
                    "like the preference samples'"
                )
        index = table.schema.get_field_index(column)
        table = table.set_column(index, table.schema.field(index), pa.array(resolved, pa.string()))
    return table


def embeds_shape(
    table: pa.Table, kind: TableKind | str, text_embeds_dir: str | os.PathLike[str]
) -> tuple[int, ...]:
    """The (S, D) prompt-embedding shape of a checked training table (its first row's file)."""
    if as_table_kind(kind) is TableKind.SAMPLES:
        return tensor_shape(Path(table[col.PROMPT_EMBEDS_PATH][0].as_py()))
    return tensor_shape(Path(text_embeds_dir) / f"{table[col.PROMPT_ID][0].as_py()}.safetensors")
