"""jobs/train_critic.py run as a user runs it: the smallest config end to end, and bad configs refused."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest
from transformers import AutoTokenizer

from ipo_ray.critic.judge_first import parse_verdict_thinking
from ipo_ray.critic.model import critic_judges_first
from ipo_ray.critic.tokenizer import caption_first
from ipo_ray.data import TableKind, read_table
from ipo_ray.world.annotators import make_annotators
from ipo_ray.world.render import RenderSettings
from ipo_ray.world.seed_set import build_seed_set

ROOT = Path(__file__).resolve().parents[2]
SMALLEST = [
    "world.seed_set.num_clips=8",
    "world.seed_set.num_pairs=4",
    "video.num_frames=4",
    "critic.train.runner=local",
    "critic.train.workers=1",
    "critic.train.steps=3",
    "critic.train.batch_size=4",
    "critic.train.eval_every=3",
    "critic.train.held_out=0.3",
    "critic.train.vocab_size=400",
    "critic.train.vision_warmup_steps=3",
]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "train_critic.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.timeout(300)
def test_smallest_config_trains_and_prints_accuracy(tmp_path: Path) -> None:
    language_model = [
        "critic.train.text_hidden=64",
        "critic.train.text_layers=3",
        "critic.train.text_intermediate=96",
    ]
    done = _run(f"run.root={tmp_path}", "run.name=job", "--no-reasons", *SMALLEST, *language_model)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(verdict only)" in done.stdout
    rows = {
        line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.startswith("pointwise")
    }
    assert {
        f"pointwise/{d}" for d in ("semantic_consistency", "motion_smoothness", "faithfulness", "mean")
    } <= set(rows)
    header = next(line.split() for line in done.stdout.splitlines() if line.startswith("accuracy"))
    assert header[1:] == ["labels", "oracle", "baseline:oracle", "baseline:labels"]
    critic = tmp_path / "job" / "critic"
    manifest = json.loads((critic / "critic_manifest.json").read_text())
    assert manifest["training"]["with_reasons"] is False and "oracle" in manifest["evaluation"]["greedy"]
    assert (critic / "config.json").is_file() and (critic / "tokenizer.json").is_file()
    text = json.loads((critic / "config.json").read_text())["text_config"]
    assert (text["hidden_size"], text["num_hidden_layers"], text["intermediate_size"]) == (64, 3, 96)
    assert (text["num_attention_heads"], text["num_key_value_heads"]) == (2, 1)


@pytest.mark.timeout(300)
def test_ray_workers_find_a_run_root_given_relative_to_the_job(tmp_path: Path) -> None:
    """Ray Train workers run elsewhere: paths from the command line must reach them resolved."""
    smallest = [a for a in SMALLEST if not a.startswith(("critic.train.runner", "critic.train.workers"))]
    done = _run("run.root=runs", "run.name=job", *smallest, "critic.train.workers=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "runs" / "job" / "critic" / "config.json").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("critic.train.lrr=1", "critic.train.lrr: unknown key (did you mean 'lr'?"),
        ("critic.train.batch_size=5", "critic.train.batch_size: must be a multiple of workers (2)"),
        ("critic.train.cpus_per_worker=0", "critic.train.cpus_per_worker: must be greater than 0"),
        ("critic.train.contrast_warmup_steps=5", "critic.train.contrast_warmup_steps: trains on contrasts"),
        ("critic.train.judge_first=true", "critic.train.judge_first: the verdicts come from the init critic"),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, override: str, message: str) -> None:
    done = _run(f"run.root={tmp_path}", override)
    assert done.returncode == 2
    assert message in done.stderr
    assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize("key", ["contrast_pairs", "attribute_warmup_steps"])
def test_caption_specs_needed_but_missing_exit_2(tmp_path: Path, key: str) -> None:
    labels = tmp_path / "labels.parquet"  # no prompts table beside it: checked before anything is read
    done = _run(f"run.root={tmp_path}", f"critic.train.labels={labels}", f"critic.train.{key}=8")
    assert done.returncode == 2
    assert f"critic.train.{key}" in done.stderr and "specs" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_missing_init_folder_exits_2(tmp_path: Path) -> None:
    done = _run(f"run.root={tmp_path}", f"critic.train.init={tmp_path / 'nope'}", *SMALLEST)
    assert done.returncode == 2
    assert "critic.train.init" in done.stderr and "not a critic folder" in done.stderr


@pytest.mark.timeout(300)
def test_the_shipped_critic_continues_deeper_describing_first_with_mirrored_pairs(tmp_path: Path) -> None:
    shipped = ROOT / "ipo_ray" / "assets" / "world_critic"
    from_scratch_only = ("video.num_frames", "critic.train.vocab_size", "critic.train.vision")
    continued = [a for a in SMALLEST if not a.startswith(from_scratch_only)]
    done = _run(
        f"run.root={tmp_path}",
        "run.name=job",
        *continued,
        f"critic.train.init={shipped}",
        "critic.train.deepen_layers=1",
        "critic.train.describe_first=true",
        "critic.train.mirror_pairs=true",
        "critic.train.caption_first=true",
        "critic.train.contrast_pairs=4",
        "critic.train.contrast_kind=both",
        "critic.train.contrast_warmup_steps=2",
        "critic.train.attribute_warmup_steps=2",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "job"
    # The attribute warm-up trained a copy of the deepened critic (the shipped one is untouched).
    assert "attribute warm-up: 2 steps" in done.stdout
    assert (run / "attribute-warm" / "model.safetensors").is_file()
    # The layout changed on the deepened copy and travels with the trained critic's tokenizer.
    assert not caption_first(AutoTokenizer.from_pretrained(shipped))
    assert caption_first(AutoTokenizer.from_pretrained(run / "critic"))
    descriptions = json.loads((run / "descriptions.json").read_text())
    assert len(descriptions) == 8 + 2 * 4 and all(descriptions.values())  # every clip, in the critic's words
    assert "pairwise/all" in done.stdout  # scored with chain-of-thought answers
    config = json.loads((run / "critic" / "config.json").read_text())
    depth = json.loads((shipped / "config.json").read_text())["text_config"]["num_hidden_layers"]
    assert config["text_config"]["num_hidden_layers"] == depth + 1
    training = json.loads((run / "critic" / "critic_manifest.json").read_text())["training"]
    assert training["mirror_pairs"] is True
    assert training["contrast_pairs"] == 4
    assert training["descriptions_path"] == str(run / "descriptions.json")
    # The contrast warm-up trained on contrasts only, and SFT went on from its folder.
    manifest = json.loads((run / "critic" / "critic_manifest.json").read_text())
    assert training["init_dir"] == str(run / "contrast-warm") and manifest["contrast_warmup"]["steps"] == 2
    assert manifest["attribute_warmup"]["steps"] == 2
    warm = json.loads((run / "contrast-warm" / "critic_manifest.json").read_text())
    assert warm["training"]["contrast_only"] is True and warm["metrics"]["train/step"] == 2


@pytest.mark.timeout(480)
def test_the_shipped_critic_continues_judging_first_on_a_given_labels_table(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    build_seed_set(
        seed,
        num_clips=4,
        num_pairs=4,
        defect_rate=0.5,
        strength_range=(0.6, 1.0),
        seed=5,
        annotators=make_annotators(3, seed=0),
        settings=RenderSettings(),
    )
    from_scratch_only = ("video.num_frames", "critic.train.vocab_size", "critic.train.vision")
    continued = [a for a in SMALLEST if not a.startswith(from_scratch_only)]
    shipped = ROOT / "ipo_ray" / "assets" / "world_critic"
    done = _run(
        f"run.root={tmp_path}",
        "run.name=job",  # a run folder the job makes itself: no seed set or deepened copy in it first
        *continued,
        f"critic.train.labels={seed / 'labels.parquet'}",
        f"critic.train.init={shipped}",
        "critic.train.judge_first=true",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    thinking = json.loads((tmp_path / "job" / "pair_thinking.json").read_text())
    pairs = read_table(seed / "labels.parquet", TableKind.LABELS).filter(pc.field("kind") == "pairwise")
    assert sorted(thinking) == sorted(pairs.column("label_id").to_pylist())
    assert all(parse_verdict_thinking(t) is not None for t in thinking.values())
    assert "pairwise/all" in done.stdout  # scored with the critic writing its verdicts first
    manifest = json.loads((tmp_path / "job" / "critic" / "critic_manifest.json").read_text())
    assert manifest["training"]["pair_thinking_path"] == str(tmp_path / "job" / "pair_thinking.json")
    assert manifest["evaluation"]["read"] == "judge-first"
    # The checkpoint declares its read, so the app serves it so, and a fine-tune of it stays judge-first.
    assert critic_judges_first(tmp_path / "job" / "critic")
    again = _run(
        f"run.root={tmp_path}",
        "run.name=again",
        *continued,
        f"critic.train.labels={seed / 'labels.parquet'}",
        f"critic.train.init={tmp_path / 'job' / 'critic'}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again" / "pair_thinking.json").is_file()
    assert critic_judges_first(tmp_path / "again" / "critic")


@pytest.mark.parametrize("key", ["deepen_layers=1", "caption_first=true"])
def test_deepening_or_relaying_an_adapter_exits_2(tmp_path: Path, key: str) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    done = _run(f"run.root={tmp_path}", f"critic.train.init={adapter}", f"critic.train.{key}")
    assert done.returncode == 2
    assert f"critic.train.{key.split('=')[0]}" in done.stderr and "adapter" in done.stderr
