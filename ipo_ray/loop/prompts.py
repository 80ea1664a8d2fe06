"""Each round's prompts: fresh from the world's grammar, or drawn from a prompts file.

IPO §3.1 and LiFT §3.1 build prompts by combining categories and expanding them into sentences; the
world grammar does exactly that, and a round's prompts are a function of (run seed, round), so a
resumed round asks the same questions. A prompts file (any prompts table, e.g. expanded offline by an
instruct LLM) is sampled without replacement per round with the same determinism.
"""

import hashlib

import numpy as np
import pyarrow as pa

from ipo_ray.data import columns as col
from ipo_ray.data import make_table, read_table
from ipo_ray.world.prompts import sample_prompts, spec_to_json

SOURCE = "world-grammar"


def round_seed(seed: int, round_index: int, purpose: str) -> int:
    """A seed for one purpose in one round, independent of every other (purpose, round)."""
    tag = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "little")
    return int(np.random.SeedSequence([seed, round_index, tag]).generate_state(1)[0])


def world_prompts(num_prompts: int, seed: int, round_index: int) -> pa.Table:
    """A prompts table of `num_prompts` world prompts for a round, ids ``r<round>-p<index>``."""
    rows = [
        {
            col.PROMPT_ID: f"r{round_index}-p{i:04d}",
            col.TEXT: text,
            col.SPEC_JSON: spec_to_json(spec),
            col.SOURCE: SOURCE,
        }
        for i, (text, spec) in enumerate(
            sample_prompts(num_prompts, round_seed(seed, round_index, "prompts"))
        )
    ]
    return make_table(rows, "prompts")


def file_prompts(path: str, num_prompts: int, seed: int, round_index: int) -> pa.Table:
    """`num_prompts` rows of a committed prompts table, a different deterministic draw each round.

    Raises:
        ValueError: The file holds fewer prompts than a round asks for.
    """
    table = read_table(path, "prompts")
    if table.num_rows < num_prompts:
        raise ValueError(f"{path} holds {table.num_rows} prompts; a round asks for {num_prompts}")
    rng = np.random.default_rng(round_seed(seed, round_index, "prompts"))
    return table.take(np.sort(rng.choice(table.num_rows, size=num_prompts, replace=False)))
