"""Merge seed sets (e.g. one of renders and one of the generator's own clips) into one training set.

A critic fine-tuned for the main loop must judge the generator's clips as well as renders; the seed
sets of each are built separately (`build_seed_set`, `world.seed_set.generated_share`) and merged
here. Videos stay where they are (labels hold absolute paths); every id gets its source folder's
name as a prefix, since two sets number their clips alike (`clip-00000` in both).
"""

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ipo_ray.data import TableKind, read_table, write_table
from ipo_ray.data import columns as col

_LABEL_IDS = (col.LABEL_ID, col.VIDEO_ID, col.VIDEO_ID_B)


def merge_seed_sets(sources: Sequence[str | Path], out_dir: str | Path) -> tuple[int, int]:
    """Writes `out_dir`/labels.parquet and prompts.parquet holding every source's rows.

    Args:
        sources: seed-set folders (each with committed labels and prompts tables), names distinct.
        out_dir: the merged set's folder; its tables are committed last, so a failed merge leaves none.

    Returns:
        (label rows, prompt rows) written.

    Raises:
        ValueError: fewer than two sources, two with one folder name, or one caption with two
            different specs (the oracle matches clips to specs by caption).
        FileNotFoundError / TableError: a source without committed tables (from `read_table`).
    """
    paths = [Path(s) for s in sources]
    if len(paths) < 2:
        raise ValueError(f"merging needs at least two seed sets, got {len(paths)}")
    names = [p.resolve().name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"seed sets to merge need distinct folder names (their id prefixes): {names}")
    labels, prompts = [], []
    for path, name in zip(paths, names, strict=True):
        table = read_table(path / "labels.parquet", TableKind.LABELS)
        labels.append(_prefixed(table, _LABEL_IDS, f"{name}:"))
        table = read_table(path / "prompts.parquet", TableKind.PROMPTS)
        prompts.append(_prefixed(table, (col.PROMPT_ID,), f"{name}:"))
    merged_prompts = pa.concat_tables(prompts, promote_options="permissive").combine_chunks()
    _check_one_spec_per_caption(merged_prompts)
    merged_labels = pa.concat_tables(labels, promote_options="permissive").combine_chunks()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_table(merged_prompts, out / "prompts.parquet", TableKind.PROMPTS)
    write_table(merged_labels, out / "labels.parquet", TableKind.LABELS)
    return merged_labels.num_rows, merged_prompts.num_rows


def _prefixed(table: pa.Table, columns: Sequence[str], prefix: str) -> pa.Table:
    for name in columns:
        i = table.schema.get_field_index(name)
        values = table[name]
        renamed = pc.if_else(pc.is_null(values), values, pc.binary_join_element_wise(prefix, values, ""))
        table = table.set_column(i, table.schema.field(i), renamed)
    return table


def _check_one_spec_per_caption(prompts: pa.Table) -> None:
    specs: dict[str, str] = {}
    for text, spec in zip(prompts[col.TEXT].to_pylist(), prompts[col.SPEC_JSON].to_pylist(), strict=True):
        if specs.setdefault(text, spec) != spec:
            raise ValueError(f"caption {text!r} has two different specs in the seed sets to merge")
