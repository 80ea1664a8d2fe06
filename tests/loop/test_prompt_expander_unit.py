"""LLM prompt expansion without an engine: cleaning, dedup counting, seeded combinations, model checks,
and the config keys that select it (`ipo_ray.loop.prompt_expander`, `prompt_categories`)."""

import json
from pathlib import Path

import numpy as np
import pytest

from ipo_ray.config import ConfigError, load_config
from ipo_ray.data import columns as col
from ipo_ray.data import make_table
from ipo_ray.loop.prompt_categories import Combination, combine, instruction, load_categories
from ipo_ray.loop.prompt_expander import ExpansionStats, Sampling, check_model, clean_description, collect

# A diffusers backend (LLM prompts have no world spec) without the λ2 term's real-videos table.
WAN_WITH_LLM_PROMPTS = [
    "generator.backend=wan",
    "generator.height=16",
    "generator.width=16",
    "generator.num_frames=5",
    "align.lambda_real=0",
    "loop.prompt_source=llm",
    "loop.prompt_llm.model=/models/qwen",
]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  A fox runs   through snow.  ", "A fox runs through snow."),
        ('"A fox runs through snow."', "A fox runs through snow."),
        ("“A fox runs.”", "A fox runs."),
        ("Sure! Here is a vivid description:\n\nA fox runs.", "A fox runs."),
        ("Here's the video description: 'A fox runs.'", "A fox runs."),
        ("Description: A fox runs.\nIt is cold.", "A fox runs."),
        ("1. A fox runs.", "A fox runs."),
        ("- **A fox runs.**", "A fox runs."),
        ('"A fox runs through the', "A fox runs through the"),  # cut off before its closing quote
        ("The fox's tail sways.", "The fox's tail sways."),
        ("A fox\x14 runs\ufffd\tfast \x01 now.", "A fox runs fast now."),
        ("   \n \n", ""),
        ('""', ""),
        ("Here is a description:", ""),
    ],
)
def test_clean_description(raw: str, clean: str) -> None:
    assert clean_description(raw, max_chars=400) == clean


def test_clean_description_caps_at_a_word_boundary() -> None:
    text = "A red fox runs, quickly, across the frozen lake at dawn"
    assert clean_description(text, max_chars=24) == "A red fox runs, quickly"  # comma dropped
    assert clean_description("Aaaaaaaaaaaaaaaaaaaaaaaaaaaa", max_chars=16) == "Aaaaaaaaaaaaaaaa"


def test_collect_drops_and_counts_empties_and_duplicates() -> None:
    fox = Combination(("a red fox",), "running", "a snowy forest at dawn", "cinematic")
    cat = Combination(("a tabby cat", "a rabbit"), "playing together", "a cosy kitchen", "pastel")
    calm, wild = Sampling(0.7, 40, 0.9), Sampling(1.1, 0, 1.0)
    stats, seen = ExpansionStats(), {"Already kept."}
    rows = collect(
        [["A fox runs.", '"A fox runs."', "", "Already kept."], ["A cat plays.", "Here is one:\n", "B."]],
        [(fox, calm), (cat, wild)],
        400,
        seen,
        stats,
    )
    assert [r[col.TEXT] for r in rows] == ["A fox runs.", "A cat plays.", "B."]
    assert (stats.samples, stats.empty, stats.duplicates) == (7, 2, 2)
    spec = json.loads(rows[1][col.SPEC_JSON])
    assert spec == {
        "categories": {
            "subjects": ["a tabby cat", "a rabbit"],
            "action": "playing together",
            "scene": "a cosy kitchen",
            "style": "pastel",
        },
        "sampling": {"temperature": 1.1, "top_k": 0, "top_p": 1.0},
    }
    assert {r[col.SOURCE] for r in rows} == {"llm-expanded"}
    assert "A cat plays." in seen


def test_combinations_are_seeded() -> None:
    categories = load_categories()  # the shipped default
    first = combine(categories, 50, np.random.default_rng(7), max_subjects=2)
    assert first == combine(categories, 50, np.random.default_rng(7), max_subjects=2)
    assert first != combine(categories, 50, np.random.default_rng(8), max_subjects=2)
    assert {len(c.subjects) for c in first} == {1, 2}
    assert all(len(set(c.subjects)) == len(c.subjects) for c in first)
    assert "a red fox and a grey horse running in a snowy forest" in instruction(
        Combination(("a red fox", "a grey horse"), "running", "a snowy forest", "cinematic")
    )


def test_categories_file_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "categories.json"
    bad.write_text(json.dumps({"subjects": ["a fox"], "actions": [], "scenes": ["a lake"], "colours": []}))
    with pytest.raises(ValueError, match="unknown key 'colours'.*actions must be.*styles must be"):
        load_categories(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"subjects": ["a fox"], "actions": ["run"], "scenes": ["x"], "styles": ["y"]}))
    with pytest.raises(ValueError, match="max_subjects 2 exceeds the 1 subjects"):
        combine(load_categories(good), 1, np.random.default_rng(0), max_subjects=2)


def test_hub_id_while_offline_asks_for_a_local_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=r"prompt_llm\.model: 'Qwen/Qwen2\.5-7B-Instruct' is not a local"):
        check_model("Qwen/Qwen2.5-7B-Instruct", "loop.prompt_llm.model")


def test_model_must_be_a_checkpoint_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no config.json"):
        check_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        check_model(str(tmp_path / "missing" / "model"))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["generator.backend=wan", "loop.prompt_source=llm"], "loop.prompt_llm.model"),
        (["loop.prompt_source=file"], "loop.prompts_file"),
        (["loop.prompts_file=/data/prompts.parquet"], "loop.prompt_source"),
        (["loop.prompt_source=llm", "loop.prompt_llm.model=/models/qwen"], "loop.prompt_source"),
        (
            ["loop.prompt_llm.sampling=[{temperature: 0, top_k: 0, top_p: 1.0}]"],
            "loop.prompt_llm.sampling.0.temperature",
        ),
    ],
)
def test_config_errors_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, overrides)


def test_llm_source_is_accepted_for_a_diffusers_backend() -> None:
    cfg = load_config(None, WAN_WITH_LLM_PROMPTS)
    assert cfg.loop.prompt_source == "llm"
    assert len(cfg.loop.prompt_llm.sampling) == 3


def test_prompts_stage_writes_llm_prompts_with_their_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipo_ray.loop import prompts, stages
    from ipo_ray.loop.run_dir import RunDir

    cfg = load_config(None, [*WAN_WITH_LLM_PROMPTS, "loop.prompts_per_round=2"])
    rows = [
        {
            col.PROMPT_ID: f"r1-p{i:04d}",
            col.TEXT: f"A fox runs {i}.",
            col.SPEC_JSON: "{}",
            col.SOURCE: "llm-expanded",
        }
        for i in range(2)
    ]
    calls = []

    def fake_llm_prompts(settings, num_prompts, round_index):  # noqa: ANN001, ANN202 - a stand-in
        calls.append((settings.model, num_prompts, round_index))
        return make_table(rows, "prompts"), {"requests": 1, "empty": 0, "duplicates": 0}

    monkeypatch.setattr(prompts, "llm_prompts", fake_llm_prompts)
    ctx = stages.RoundContext(cfg, RunDir(tmp_path / "run"), 1, tmp_path, tmp_path, "v1", tmp_path, None)
    result = stages.prompts_stage(ctx)
    assert calls == [("/models/qwen", 2, 1)]
    assert result.metrics == {"prompts": 2, "llm_requests": 1, "llm_empty": 0, "llm_duplicates": 0}
    assert stages.round_prompts(ctx)[col.TEXT].to_pylist() == ["A fox runs 0.", "A fox runs 1."]
