"""Checks a table against its schema and value domains; builds validated tables from rows.

pyarrow enforces neither nullability nor value domains when a table is built, so every writer calls
`validate_table` (``write_table`` does it for you) and every reader runs it again on what it loaded.
An error names the table kind, the column, the first offending row and how to fix it.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ipo_ray.data import columns as col
from ipo_ray.data.schemas import (
    ANSWERS,
    LABEL_KINDS,
    PRIMARY_KEYS,
    VOTE_COLUMNS,
    TableKind,
    as_table_kind,
    schema_for,
)
from ipo_ray.vocab import DIMENSIONS


class TableValidationError(ValueError):
    """A table does not match its kind's schema or value domains."""


# Required string columns that must also be non-empty (free text such as `reason` may be empty).
_NON_EMPTY: dict[TableKind, tuple[str, ...]] = {
    TableKind.PROMPTS: (col.PROMPT_ID, col.TEXT, col.SOURCE),
    TableKind.CANDIDATES: (
        col.CANDIDATE_ID,
        col.PROMPT_ID,
        col.GENERATOR_VERSION,
        col.LATENT_PATH,
        col.VIDEO_PATH,
    ),
    TableKind.LABELS: (col.LABEL_ID, col.VIDEO_ID, col.VIDEO_PATH, col.PROMPT, col.SOURCE),
    TableKind.PAIRS: (
        col.PAIR_ID,
        col.PROMPT_ID,
        col.PROMPT,
        col.WINNER_CANDIDATE_ID,
        col.LOSER_CANDIDATE_ID,
        col.WINNER_LATENT_PATH,
        col.LOSER_LATENT_PATH,
    ),
    TableKind.REAL_VIDEOS: (col.VIDEO_ID, col.VIDEO_PATH, col.CAPTION),
    TableKind.SAMPLES: (
        col.CANDIDATE_ID,
        col.PROMPT_ID,
        col.PROMPT,
        col.LATENT_PATH,
        col.PROMPT_EMBEDS_PATH,
    ),
    # answer_text may be empty: an empty sample is a real (unparseable) answer.
    TableKind.CRITIC_ANSWERS: (col.ANSWER_ID, col.LABEL_ID),
}


def make_table(rows: Sequence[Mapping[str, Any]], kind: TableKind | str) -> pa.Table:
    """Builds a validated table of `kind` from row dicts.

    Every row must give every required column; optional columns may be left out (null). Unknown
    keys are an error rather than being dropped, so a misspelt column cannot vanish silently.

    Args:
        rows: One mapping per row, keyed by the names in `ipo_ray.data.columns`.
        kind: The table kind, e.g. ``TableKind.LABELS`` or ``"labels"``.

    Returns:
        A table with exactly `schema_for(kind)`.

    Raises:
        TableValidationError: A row has an unknown key, or a value breaks the schema's domains.
    """
    kind = as_table_kind(kind)
    schema = schema_for(kind)
    known = set(schema.names)
    for index, row in enumerate(rows):
        unknown = sorted(set(row) - known)
        if unknown:
            raise TableValidationError(
                f"{kind} table row {index}: unknown column(s) {unknown}; the columns are {schema.names}"
            )
    table = pa.Table.from_pylist(list(rows), schema=schema)
    validate_table(table, kind)
    return table


def conform_table(table: pa.Table, kind: TableKind | str) -> pa.Table:
    """Casts a table with the right columns but other Arrow types to the exact schema, then validates.

    Ray Data's pandas and numpy batches come back with inferred types (int64 for int32, plain or
    large strings for dictionaries, columns in any order); a stage writing such a batch conforms
    it first. Values are cast, never invented: a column that is missing or extra is an error.

    Args:
        table: A table with exactly the columns of `kind`, in any order and of castable types.
        kind: The table kind.

    Returns:
        A table with exactly `schema_for(kind)`.

    Raises:
        TableValidationError: Columns differ, a value cannot be cast (e.g. overflow), or the result
            breaks the schema's domains.
    """
    kind = as_table_kind(kind)
    schema = schema_for(kind)
    missing = [n for n in schema.names if n not in table.column_names]
    extra = [n for n in table.column_names if n not in schema.names]
    if missing or extra:
        raise TableValidationError(f"{kind} table: missing columns {missing}, unexpected columns {extra}")
    try:
        conformed = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise TableValidationError(f"{kind} table: cannot cast to the {kind} schema: {error}") from None
    validate_table(conformed, kind)
    return conformed


def validate_table(table: pa.Table, kind: TableKind | str) -> None:
    """Checks `table` against the schema and value domains of `kind`.

    Checks, in order: exact schema (names, order, types, nullability); no nulls in required
    columns; non-empty ids, paths and texts; a unique primary key; then per-kind domains (label
    kinds, dimensions, verdicts per kind, votes, certainty; pair winner differs from loser; rounds
    non-negative; prompt specs are JSON objects).

    Args:
        table: The table to check.
        kind: The table kind it claims to be.

    Raises:
        TableValidationError: The first problem found, naming the column and the first bad row.
    """
    kind = as_table_kind(kind)
    _check_schema(table.schema, schema_for(kind), kind)
    check = _checker(table, kind)
    for field in schema_for(kind):
        if not field.nullable:
            check(field.name, pc.is_null(table[field.name]), "is null but required")
    for name in _NON_EMPTY[kind]:
        check(name, pc.equal(pc.utf8_length(_plain(table[name])), 0), "is empty")
    _check_unique(table, kind, PRIMARY_KEYS[kind])
    _DOMAIN_CHECKS[kind](table, kind)


def _check_schema(actual: pa.Schema, expected: pa.Schema, kind: TableKind) -> None:
    if actual.remove_metadata().equals(expected):
        return
    missing = [n for n in expected.names if n not in actual.names]
    extra = [n for n in actual.names if n not in expected.names]
    if missing or extra:
        raise TableValidationError(
            f"{kind} table: missing columns {missing}, unexpected columns {extra}; "
            f"build it with ipo_ray.data.make_table(rows, {kind.value!r}) to get the schema right"
        )
    if actual.names != expected.names:
        raise TableValidationError(
            f"{kind} table: columns are in order {actual.names}, expected {expected.names}; "
            f"reorder with table.select(schema_for({kind.value!r}).names)"
        )
    for got, want in zip(actual, expected, strict=True):
        if not got.equals(want):
            raise TableValidationError(
                f"{kind} table: column '{want.name}' is {got.type}"
                f"{'' if got.nullable else ' not null'}, expected {want.type}"
                f"{'' if want.nullable else ' not null'}; "
                f"cast it, e.g. table.cast(schema_for({kind.value!r}))"
            )


def _checker(table: pa.Table, kind: TableKind) -> Callable[[str, Any, str], None]:
    """Returns `check(column, bad, problem)`, raising if any row of the boolean mask `bad` is true."""

    def check(column: str, bad: Any, problem: str) -> None:
        row = pc.index(pc.fill_null(bad, False), True).as_py()
        if row >= 0:
            value = table[column][row].as_py()
            raise TableValidationError(
                f"{kind} table: column '{column}' row {row}: value {value!r} {problem}"
            )

    return check


def _check_unique(table: pa.Table, kind: TableKind, column: str) -> None:
    seen: dict[Any, int] = {}
    for row, value in enumerate(table[column].to_pylist()):
        if value in seen:
            raise TableValidationError(
                f"{kind} table: column '{column}' row {row}: value {value!r} duplicates row {seen[value]}; "
                f"ids must be unique"
            )
        seen[value] = row


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary-encoded columns decoded to strings, so compute kernels see values, not indices."""
    return column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column


def _not_in(column: pa.ChunkedArray, allowed: tuple[str, ...]) -> Any:
    return pc.invert(pc.is_in(_plain(column), value_set=pa.array(allowed, pa.string())))


def _check_prompts(table: pa.Table, kind: TableKind) -> None:
    for row, spec in enumerate(table[col.SPEC_JSON].to_pylist()):
        if spec is None:
            continue
        try:
            parsed = json.loads(spec)
        except json.JSONDecodeError as error:
            raise TableValidationError(
                f"{kind} table: column '{col.SPEC_JSON}' row {row}: not valid JSON ({error}); "
                f"write json.dumps(dataclasses.asdict(spec)) or null"
            ) from None
        if not isinstance(parsed, dict):
            raise TableValidationError(
                f"{kind} table: column '{col.SPEC_JSON}' row {row}: a JSON {type(parsed).__name__}, "
                f"expected a JSON object"
            )


def _check_candidates(table: pa.Table, kind: TableKind) -> None:
    check = _checker(table, kind)
    check(col.ROUND, pc.less(table[col.ROUND], 0), "is negative; rounds count from 0")


def _check_labels(table: pa.Table, kind: TableKind) -> None:
    check = _checker(table, kind)
    label_kind = _plain(table[col.KIND])
    check(col.KIND, _not_in(table[col.KIND], LABEL_KINDS), f"is not one of {LABEL_KINDS}")
    check(col.DIMENSION, _not_in(table[col.DIMENSION], DIMENSIONS), f"is not one of {DIMENSIONS}")
    pairwise = pc.equal(label_kind, "pairwise")
    for name in (col.VIDEO_ID_B, col.VIDEO_PATH_B):
        check(name, pc.and_(pairwise, pc.is_null(table[name])), "is null on a pairwise row")
        check(
            name,
            pc.and_(pc.invert(pairwise), pc.is_valid(table[name])),
            "is set on a pointwise row; only pairwise rows have a video B",
        )
    verdict = _plain(table[col.VERDICT])
    for this_kind, answers in ANSWERS.items():
        rows = pc.equal(label_kind, this_kind)
        check(
            col.VERDICT,
            pc.and_(rows, _not_in(table[col.VERDICT], answers)),
            f"is not a {this_kind} answer {answers}",
        )
    # A critic's label may be read from its answer's first token (critic.vote=first_token) while its
    # sampled answers, whose counts these are, all said something else; annotators' labels are votes.
    voted = pc.not_equal(_plain(table[col.SOURCE]), "critic")
    for this_kind, vote_columns in VOTE_COLUMNS.items():
        other_kind = next(k for k in LABEL_KINDS if k != this_kind)
        for answer, votes in vote_columns.items():
            check(votes, pc.less(table[votes], 0), "is negative")
            check(
                votes,
                pc.and_(pc.equal(label_kind, other_kind), pc.not_equal(table[votes], 0)),
                f"counts a {this_kind} answer on a {other_kind} row; it must be 0",
            )
            check(
                votes,
                pc.and_(voted, pc.and_(pc.equal(verdict, answer), pc.less(table[votes], 1))),
                f"gives verdict {answer!r} no vote; the verdict of a vote must have at least one vote",
            )
    certainty = table[col.CERTAINTY]
    outside = pc.or_(pc.is_nan(certainty), pc.or_(pc.less(certainty, 0.0), pc.greater(certainty, 1.0)))
    check(col.CERTAINTY, outside, "is outside [0, 1]")


def _check_pairs(table: pa.Table, kind: TableKind) -> None:
    check = _checker(table, kind)
    check(
        col.LOSER_CANDIDATE_ID,
        pc.equal(table[col.WINNER_CANDIDATE_ID], table[col.LOSER_CANDIDATE_ID]),
        "equals the winner; a pair needs two different candidates",
    )
    for name in (col.WINNER_REWARD, col.LOSER_REWARD):
        check(name, pc.invert(pc.is_finite(table[name])), "is not finite")
    check(col.ROUND, pc.less(table[col.ROUND], 0), "is negative; rounds count from 0")


def _check_samples(table: pa.Table, kind: TableKind) -> None:
    check = _checker(table, kind)
    # Rewards weight the loss (LiFT Eq. 3): a negative weight would push the model towards the sample.
    reward = table[col.REWARD]
    check(col.REWARD, pc.invert(pc.is_finite(reward)), "is not finite")
    check(col.REWARD, pc.less(reward, 0.0), "is negative; rewards weight the loss and must be >= 0")
    check(col.ROUND, pc.less(table[col.ROUND], 0), "is negative; rounds count from 0")


def _check_critic_answers(table: pa.Table, kind: TableKind) -> None:
    check = _checker(table, kind)
    check(col.SAMPLE_INDEX, pc.less(table[col.SAMPLE_INDEX], 0), "is negative; samples count from 0")
    every = tuple(a for answers in ANSWERS.values() for a in answers)
    check(
        col.ANSWER_VERDICT,
        pc.and_(pc.is_valid(table[col.ANSWER_VERDICT]), _not_in(table[col.ANSWER_VERDICT], every)),
        f"is not an answer {every}; write null for an unparseable sample",
    )


def _no_domain_checks(table: pa.Table, kind: TableKind) -> None:
    del table, kind  # real videos have no domain beyond the schema and non-empty paths


_DOMAIN_CHECKS = {
    TableKind.PROMPTS: _check_prompts,
    TableKind.CANDIDATES: _check_candidates,
    TableKind.LABELS: _check_labels,
    TableKind.PAIRS: _check_pairs,
    TableKind.REAL_VIDEOS: _no_domain_checks,
    TableKind.SAMPLES: _check_samples,
    TableKind.CRITIC_ANSWERS: _check_critic_answers,
}
