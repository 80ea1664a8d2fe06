"""Schemas and validation: every kind builds, and each broken domain is named with column and row."""

import json

import pyarrow as pa
import pytest

from ipo_ray.data import columns as col
from ipo_ray.data.schemas import TableKind, empty_table, schema_for
from ipo_ray.data.validation import TableValidationError, conform_table, make_table, validate_table


@pytest.mark.parametrize("kind", list(TableKind))
def test_sample_rows_build_a_table_with_the_exact_schema(kind, sample_rows) -> None:
    table = make_table(sample_rows(kind), kind)
    assert table.schema.equals(schema_for(kind))
    assert table.num_rows == 4
    validate_table(empty_table(kind), kind)


def test_categorical_columns_are_dictionary_encoded_and_ids_plain_strings() -> None:
    labels = schema_for("labels")
    for name in (col.KIND, col.DIMENSION, col.VERDICT, col.SOURCE):
        assert pa.types.is_dictionary(labels.field(name).type), name
    assert labels.field(col.LABEL_ID).type == pa.string()
    assert labels.field(col.ANNOTATOR).type == pa.string()  # nullable: see the schemas docstring
    assert not labels.field(col.VERDICT).nullable and labels.field(col.VIDEO_ID_B).nullable


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ValueError, match="unknown table kind 'label'.*'labels'"):
        schema_for("label")


def _break(rows: list[dict], row: int, changes: dict) -> list[dict]:
    rows[row] = rows[row] | changes
    return rows


@pytest.mark.parametrize(
    ("kind", "row", "changes", "message"),
    [
        (
            "labels",
            2,
            {col.VERDICT: "Great", col.VOTES_GOOD: 1},
            r"'verdict' row 2: value 'Great' is not a pointwise",
        ),
        ("labels", 0, {col.VERDICT: "A", col.VOTES_A: 1}, r"'verdict' row 0: value 'A' is not a pointwise"),
        ("labels", 1, {col.VERDICT: "Good"}, r"'verdict' row 1: value 'Good' is not a pairwise"),
        ("labels", 3, {col.DIMENSION: "aesthetics"}, r"'dimension' row 3: value 'aesthetics' is not one of"),
        ("labels", 2, {col.KIND: "listwise"}, r"'kind' row 2: value 'listwise' is not one of"),
        ("labels", 1, {col.VIDEO_ID_B: None}, r"'video_id_b' row 1: value None is null on a pairwise row"),
        ("labels", 0, {col.VIDEO_PATH_B: "b.mp4"}, r"'video_path_b' row 0: .* only pairwise rows"),
        ("labels", 0, {col.VOTES_A: 1}, r"'votes_a' row 0: .*on a pointwise row; it must be 0"),
        (
            "labels",
            2,
            {col.VOTES_GOOD: 0, col.VOTES_BAD: 3, col.SOURCE: "world"},
            r"'votes_good' row 2: .*no vote",
        ),
        ("labels", 2, {col.VOTES_NORMAL: -1}, r"'votes_normal' row 2: value -1 is negative"),
        ("labels", 3, {col.CERTAINTY: 1.5}, r"'certainty' row 3: value 1.5 is outside \[0, 1\]"),
        ("labels", 3, {col.CERTAINTY: float("nan")}, r"'certainty' row 3: .*outside"),
        ("labels", 3, {col.REASON: None}, r"'reason' row 3: value None is null but required"),
        ("labels", 1, {col.LABEL_ID: "l0"}, r"'label_id' row 1: value 'l0' duplicates row 0"),
        ("labels", 2, {col.VIDEO_PATH: ""}, r"'video_path' row 2: value '' is empty"),
        ("pairs", 1, {col.LOSER_CANDIDATE_ID: "c1a"}, r"'loser_candidate_id' row 1: .*equals the winner"),
        ("pairs", 2, {col.WINNER_REWARD: float("inf")}, r"'winner_reward' row 2: value inf is not finite"),
        ("samples", 3, {col.REWARD: -0.1}, r"'reward' row 3: value -0.1 is negative"),
        ("samples", 1, {col.REWARD: float("nan")}, r"'reward' row 1: value nan is not finite"),
        ("samples", 2, {col.PROMPT_EMBEDS_PATH: ""}, r"'prompt_embeds_path' row 2: value '' is empty"),
        ("candidates", 3, {col.ROUND: -1}, r"'round' row 3: value -1 is negative"),
        ("prompts", 1, {col.SPEC_JSON: "{not json"}, r"'spec_json' row 1: not valid JSON"),
        ("prompts", 1, {col.SPEC_JSON: "[1, 2]"}, r"'spec_json' row 1: a JSON list, expected a JSON object"),
        ("real_videos", 2, {col.CAPTION: None}, r"'caption' row 2: value None is null but required"),
    ],
)
def test_broken_values_name_the_column_and_first_bad_row(sample_rows, kind, row, changes, message) -> None:
    with pytest.raises(TableValidationError, match=message):
        make_table(_break(sample_rows(kind), row, changes), kind)


def test_a_critic_label_read_from_the_first_token_may_have_no_sampled_vote(sample_rows) -> None:
    rows = _break(sample_rows("labels"), 2, {col.VOTES_GOOD: 0, col.VOTES_BAD: 3, col.SOURCE: "critic"})
    assert make_table(rows, "labels").num_rows == len(rows)  # its votes are the samples', not the read's


def test_unknown_row_key_is_an_error_not_dropped(sample_rows) -> None:
    rows = sample_rows("prompts")
    rows[1]["promt"] = "typo"
    with pytest.raises(TableValidationError, match=r"row 1: unknown column\(s\) \['promt'\]"):
        make_table(rows, "prompts")


def test_schema_mismatches_are_explained(sample_rows) -> None:
    table = make_table(sample_rows("labels"), "labels")
    with pytest.raises(TableValidationError, match=r"missing columns \['certainty'\]"):
        validate_table(table.drop_columns([col.CERTAINTY]), "labels")
    plain = table.set_column(
        table.schema.get_field_index(col.VERDICT), col.VERDICT, table[col.VERDICT].cast(pa.string())
    )
    with pytest.raises(TableValidationError, match=r"column 'verdict' is string.*expected dictionary"):
        validate_table(plain, "labels")
    reordered = table.select(list(reversed(table.column_names)))
    with pytest.raises(TableValidationError, match="in order"):
        validate_table(reordered, "labels")
    with pytest.raises(TableValidationError, match="missing columns"):
        validate_table(table, "pairs")


def test_spec_json_round_trips_a_structured_prompt(sample_rows) -> None:
    table = make_table(sample_rows("prompts"), "prompts")
    assert json.loads(table[col.SPEC_JSON][1].as_py()) == {"subjects": [{"shape": "circle"}]}
    assert table[col.SPEC_JSON][0].as_py() is None


def test_conform_casts_ray_style_batches_back_to_the_schema(sample_rows) -> None:
    table = make_table(sample_rows("labels"), "labels")
    via_pandas = pa.Table.from_pandas(table.to_pandas(), preserve_index=False)  # int8 dictionaries
    via_rows = pa.Table.from_pylist(table.to_pylist())  # int64, plain strings
    for batch in (via_pandas, via_rows, via_rows.select(list(reversed(via_rows.column_names)))):
        assert not batch.schema.equals(table.schema)
        assert conform_table(batch, "labels").equals(table)
    with pytest.raises(TableValidationError, match=r"missing columns \['reason'\]"):
        conform_table(via_rows.drop_columns([col.REASON]), "labels")
    huge = via_rows.set_column(
        via_rows.schema.get_field_index(col.VOTES_A), col.VOTES_A, pa.array([2**40] * 4, pa.int64())
    )
    with pytest.raises(TableValidationError, match="cannot cast"):
        conform_table(huge, "labels")
