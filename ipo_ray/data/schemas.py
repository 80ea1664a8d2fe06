"""The pyarrow schemas of every table a stage reads or writes, and helpers to build conforming tables.

Seven kinds of table flow through a round:

- ``prompts``: one row per prompt; ``spec_json`` holds the structured prompt spec (world prompts), the
  categories and sampling setting an LLM-expanded prompt came from (`ipo_ray.loop.prompt_expander`),
  or is null (prompts from elsewhere).
- ``candidates``: one row per generated video; the seed and generator version make it reproducible.
- ``labels``: one row per (judged item, dimension). ``kind`` is ``pointwise`` (one video, verdict
  Good/Normal/Bad) or ``pairwise`` (videos A and B, verdict A/B/tie; ``video_id_b``/``video_path_b``
  are set exactly for pairwise rows).
- ``pairs``: preference pairs for Diffusion-DPO, winner and loser with their latents and rewards.
- ``samples``: one row per generated candidate for the single-sample objectives: Diffusion-KTO reads
  ``desirable``, reward-weighted learning (LiFT Eq. 3) reads ``reward``, rejection sampling (LiFT Eq. 4)
  keeps rows whose ``passes`` is true. Paths may be relative to the stage directory the table lives in.
- ``real_videos``: real clips with their captions for the NLL regulariser (IPO Eq. 9, LiFT Eq. 3);
  ``latent_path`` and ``prompt_embeds_path`` are null until the clips are encoded
  (`ipo_ray.generator.real.encode_real_videos`).
- ``critic_answers``: one row per sampled answer of a critic question (the n chain-of-thought samples
  behind a label): ``label_id`` names the question (the labels table's id, also for questions that
  got no majority and so have no label row), ``answer_text`` is the raw text, ``answer_verdict``
  the parsed verdict or null when unparseable. The SRPO loss pairs these texts
  (`ipo_ray.critic.srpo`).

Votes are six int32 columns, one per possible answer (``votes_good``, ``votes_normal``, ``votes_bad``
for pointwise rows; ``votes_a``, ``votes_b``, ``votes_tie`` for pairwise rows); the other kind's three
columns are 0. Plain columns rather than a map keep the table filterable in Ray Data and pandas
without unpacking. A single human label has one vote on its verdict and certainty 1.0; a critic's
n samples spread n votes, and certainty is what the voting rule says (the winning share, or with
``critic.vote=first_token`` the verdict's first-token probability). Every verdict of a vote has at
least one vote; a critic's (source ``critic``) need not, since a first-token read may differ from
all its samples.

Required low-cardinality strings (kind, dimension, verdict, source, generator_version) are
dictionary encoded; ids, paths, free text and nullable strings are plain strings. Nullable columns
stay plain because an all-null dictionary array cannot be converted to numpy (pyarrow 25 raises
IndexError in ``to_numpy``), which is what Ray Data's default numpy batches do. Parquet
dictionary-encodes repetitive plain strings on disk anyway.
"""

from enum import StrEnum
from typing import Final, Literal

import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.vocab import PREFERENCES, VERDICTS


class TableKind(StrEnum):
    """The kinds of table; the value is also the name written into manifests."""

    PROMPTS = "prompts"
    CANDIDATES = "candidates"
    LABELS = "labels"
    PAIRS = "pairs"
    REAL_VIDEOS = "real_videos"
    SAMPLES = "samples"
    CRITIC_ANSWERS = "critic_answers"


LabelKind = Literal["pointwise", "pairwise"]
LABEL_KINDS: Final[tuple[LabelKind, ...]] = ("pointwise", "pairwise")

# The answers each label kind allows, and the vote column counting each answer.
ANSWERS: Final[dict[str, tuple[str, ...]]] = {"pointwise": VERDICTS, "pairwise": PREFERENCES}
VOTE_COLUMNS: Final[dict[str, dict[str, str]]] = {
    "pointwise": {"Good": col.VOTES_GOOD, "Normal": col.VOTES_NORMAL, "Bad": col.VOTES_BAD},
    "pairwise": {"A": col.VOTES_A, "B": col.VOTES_B, "tie": col.VOTES_TIE},
}

# Bump a kind's version whenever its schema changes; readers refuse files of another version.
# real_videos 2: + prompt_embeds_path (the caption's embeddings, for the λ2 term).
SCHEMA_VERSIONS: Final[dict[TableKind, int]] = {kind: 1 for kind in TableKind} | {TableKind.REAL_VIDEOS: 2}

# int32 indices: categories such as annotators can outgrow int8, and int32 is what parquet and
# pandas use by default, so no cast happens on the way in or out.
_CATEGORY = pa.dictionary(pa.int32(), pa.string())


def _required(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


def _optional(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=True)


_SCHEMAS: Final[dict[TableKind, pa.Schema]] = {
    TableKind.PROMPTS: pa.schema(
        [
            _required(col.PROMPT_ID, pa.string()),
            _required(col.TEXT, pa.string()),
            _optional(col.SPEC_JSON, pa.string()),
            _required(col.SOURCE, _CATEGORY),
        ]
    ),
    TableKind.CANDIDATES: pa.schema(
        [
            _required(col.CANDIDATE_ID, pa.string()),
            _required(col.PROMPT_ID, pa.string()),
            _required(col.SEED, pa.int64()),
            _required(col.GENERATOR_VERSION, _CATEGORY),
            _required(col.LATENT_PATH, pa.string()),
            _required(col.VIDEO_PATH, pa.string()),
            _required(col.ROUND, pa.int32()),
        ]
    ),
    TableKind.LABELS: pa.schema(
        [
            _required(col.LABEL_ID, pa.string()),
            _required(col.KIND, _CATEGORY),
            _required(col.VIDEO_ID, pa.string()),
            _required(col.VIDEO_PATH, pa.string()),
            _optional(col.VIDEO_ID_B, pa.string()),
            _optional(col.VIDEO_PATH_B, pa.string()),
            _required(col.PROMPT, pa.string()),
            _required(col.DIMENSION, _CATEGORY),
            _required(col.VERDICT, _CATEGORY),
            _required(col.REASON, pa.string()),
            _required(col.VOTES_GOOD, pa.int32()),
            _required(col.VOTES_NORMAL, pa.int32()),
            _required(col.VOTES_BAD, pa.int32()),
            _required(col.VOTES_A, pa.int32()),
            _required(col.VOTES_B, pa.int32()),
            _required(col.VOTES_TIE, pa.int32()),
            _required(col.CERTAINTY, pa.float64()),
            _optional(col.CRITIC_VERSION, pa.string()),
            _optional(col.ANNOTATOR, pa.string()),
            _required(col.SOURCE, _CATEGORY),
        ]
    ),
    TableKind.PAIRS: pa.schema(
        [
            _required(col.PAIR_ID, pa.string()),
            _required(col.PROMPT_ID, pa.string()),
            _required(col.PROMPT, pa.string()),
            _required(col.WINNER_CANDIDATE_ID, pa.string()),
            _required(col.LOSER_CANDIDATE_ID, pa.string()),
            _required(col.WINNER_LATENT_PATH, pa.string()),
            _required(col.LOSER_LATENT_PATH, pa.string()),
            _required(col.WINNER_REWARD, pa.float64()),
            _required(col.LOSER_REWARD, pa.float64()),
            _required(col.ROUND, pa.int32()),
        ]
    ),
    TableKind.REAL_VIDEOS: pa.schema(
        [
            _required(col.VIDEO_ID, pa.string()),
            _required(col.VIDEO_PATH, pa.string()),
            _required(col.CAPTION, pa.string()),
            _optional(col.LATENT_PATH, pa.string()),
            _optional(col.PROMPT_EMBEDS_PATH, pa.string()),
        ]
    ),
    TableKind.SAMPLES: pa.schema(
        [
            _required(col.CANDIDATE_ID, pa.string()),
            _required(col.PROMPT_ID, pa.string()),
            _required(col.PROMPT, pa.string()),
            _required(col.LATENT_PATH, pa.string()),
            _required(col.PROMPT_EMBEDS_PATH, pa.string()),
            _required(col.REWARD, pa.float64()),
            _required(col.DESIRABLE, pa.bool_()),
            _required(col.PASSES, pa.bool_()),
            _required(col.ROUND, pa.int32()),
        ]
    ),
    TableKind.CRITIC_ANSWERS: pa.schema(
        [
            _required(col.ANSWER_ID, pa.string()),
            _required(col.LABEL_ID, pa.string()),
            _required(col.SAMPLE_INDEX, pa.int32()),
            _required(col.ANSWER_TEXT, pa.string()),
            _optional(col.ANSWER_VERDICT, pa.string()),
        ]
    ),
}

# The column whose values must be unique within a table (and across the parts of one table).
PRIMARY_KEYS: Final[dict[TableKind, str]] = {
    TableKind.PROMPTS: col.PROMPT_ID,
    TableKind.CANDIDATES: col.CANDIDATE_ID,
    TableKind.LABELS: col.LABEL_ID,
    TableKind.PAIRS: col.PAIR_ID,
    TableKind.REAL_VIDEOS: col.VIDEO_ID,
    TableKind.SAMPLES: col.CANDIDATE_ID,
    TableKind.CRITIC_ANSWERS: col.ANSWER_ID,
}


def schema_for(kind: TableKind | str) -> pa.Schema:
    """Returns the pyarrow schema of a table kind.

    Args:
        kind: A `TableKind` or its string value, e.g. ``"labels"``.

    Raises:
        ValueError: `kind` names no table kind.
    """
    return _SCHEMAS[as_table_kind(kind)]


def empty_table(kind: TableKind | str) -> pa.Table:
    """Returns a table of `kind` with no rows (a stage that produced nothing still commits one)."""
    return _SCHEMAS[as_table_kind(kind)].empty_table()


def as_table_kind(kind: TableKind | str) -> TableKind:
    """Converts a kind's string value to the `TableKind`, with an error listing the kinds."""
    try:
        return TableKind(kind)
    except ValueError:
        raise ValueError(f"unknown table kind {kind!r}; use one of {[k.value for k in TableKind]}") from None
