"""Critic SFT (IPO Eq. 1): answer-only labels, vLLM-rule positions, learning, LoRA, checkpoints vLLM loads."""

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ipo_ray.critic.adapters import read_adapter
from ipo_ray.critic.checkpoint import read_manifest
from ipo_ray.critic.evaluate import video_reliance
from ipo_ray.critic.model import load_critic
from ipo_ray.critic.sft import (
    IGNORE,
    FrameCache,
    SftExample,
    answer_logps,
    answer_loss,
    answer_weights,
    collate,
    describe_examples,
    encode,
    examples_from_labels,
    split_held_out,
)
from ipo_ray.critic.train_loop import TrainPlan, train_critic
from ipo_ray.data import TableKind, empty_table, read_table

NUM_FRAMES = 4  # the world's clip length: short prompts keep these tests fast


def _plan(seed_dir: Path, init_dir: Path, out: Path, **overrides: object) -> TrainPlan:
    base = {
        "init_dir": str(init_dir),
        "labels_path": str(seed_dir / "labels.parquet"),
        "out_dir": str(out),
        "num_frames": NUM_FRAMES,
        "batch_size": 8,
        "steps": 12,
        "warmup_steps": 0,
        "eval_every": 6,
        "held_out": 0.2,
        "lr": 3e-3,
    }
    return TrainPlan(**(base | overrides))  # type: ignore[arg-type]


def test_labels_are_the_answer_tokens_only(examples: list[SftExample], init_dir: Path) -> None:
    _, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    for example in (examples[0], next(e for e in examples if e.kind == "pairwise")):
        videos = [frames(p) for p in example.video_paths]
        enc = encode(processor, example, videos)
        answer = enc.labels != IGNORE
        # Everything before the answer is masked; the answer is one block at the end.
        first = int(answer.nonzero()[0])
        assert answer[first:].all() and not answer[:first].any()
        text = processor.tokenizer.decode(enc.labels[answer])
        assert text == example.answer() + "<|im_end|>"
        assert example.reason and example.reason in text
        prompt_only = encode(processor, example, videos, with_answer=False)
        assert torch.equal(prompt_only.input_ids, enc.input_ids[:first])
        verdict_only = encode(processor, example, videos, with_reasons=False)
        assert processor.tokenizer.decode(verdict_only.labels[verdict_only.labels != IGNORE]).endswith(
            ".<|im_end|>"
        )
        assert example.reason not in processor.tokenizer.decode(verdict_only.input_ids)


def test_positions_follow_vllms_rule_in_padded_batches(examples: list[SftExample], init_dir: Path) -> None:
    """Collated positions = the patched model's own (vLLM rule) = each example's positions alone."""
    from ipo_ray.critic.rope import mrope_position_ids

    model, processor = load_critic(init_dir)
    frames = FrameCache(16)  # 16 frames of 16×16: 8 temporal groups > 2 merged rows, where rules differ
    chosen = [examples[0], next(e for e in examples if e.kind == "pairwise"), examples[3]]
    encoded = [encode(processor, e, [frames(p) for p in e.video_paths]) for e in chosen]
    batch = collate(encoded, processor.tokenizer.pad_token_id, 2)
    assert batch["attention_mask"].sum() < batch["attention_mask"].numel()  # padding present
    own, _ = model.model.get_rope_index(
        batch["input_ids"], batch["mm_token_type_ids"], None, batch["video_grid_thw"], batch["attention_mask"]
    )
    assert torch.equal(own, batch["position_ids"])
    for row, enc in enumerate(encoded):
        alone, _ = mrope_position_ids(
            enc.input_ids[None], enc.mm_token_type_ids[None], None, enc.video_grid_thw, 2
        )
        assert torch.equal(batch["position_ids"][:, row, : enc.input_ids.shape[0]], alone[:, 0])
        # The text after a video resumes after the largest position the video used (t = 8 groups).
        after = int((enc.mm_token_type_ids == 2).nonzero()[-1]) + 1
        video_max = alone[:, 0, :after].max()
        assert int(alone[0, 0, after]) == int(video_max) + 1
    # The loss path (explicit positions) equals the model's own forward (positions from its rule).
    with torch.no_grad():
        explicit = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        implicit = model(**{k: v for k, v in batch.items() if k not in ("labels", "position_ids")}).logits
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(explicit[mask], implicit[mask])


def test_answer_loss_counts_answer_tokens(examples: list[SftExample], init_dir: Path) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    encoded = [encode(processor, e, [frames(p) for p in e.video_paths]) for e in examples[:4]]
    batch = collate(encoded, processor.tokenizer.pad_token_id, 2)
    with torch.no_grad():
        loss, count = answer_loss(model, batch)
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert count == sum(int((e.labels != IGNORE).sum()) for e in encoded)
    reference = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1), reduction="sum"
    )
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-4)


def test_answer_logps_are_per_row_answer_sums(examples: list[SftExample], init_dir: Path) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    e = examples[0]
    videos = [frames(p) for p in e.video_paths]
    # A sampled answer replaces the label's; rows of different lengths are padded in one batch.
    encoded = [encode(processor, e, videos), encode(processor, e, videos, answer="Bad. It flickers a lot.")]
    assert not torch.equal(encoded[0].input_ids, encoded[1].input_ids)
    pad = processor.tokenizer.pad_token_id
    with torch.no_grad():
        both = answer_logps(model, collate(encoded, pad, 2))
        alone = [answer_loss(model, collate([x], pad, 2))[0] for x in encoded]
    assert both.shape == (2,)
    torch.testing.assert_close(both, -torch.stack(alone), rtol=1e-5, atol=1e-4)


def test_verdict_weight_falls_on_the_verdict_token(examples: list[SftExample], init_dir: Path) -> None:
    _, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    chosen = [examples[0], next(e for e in examples if e.kind == "pairwise")]
    batch = collate(
        [encode(processor, e, [frames(p) for p in e.video_paths]) for e in chosen],
        processor.tokenizer.pad_token_id,
        2,
    )
    plain, weighted = answer_weights(batch["labels"]), answer_weights(batch["labels"], 5.0)
    assert torch.equal(plain, (batch["labels"][:, 1:] != IGNORE).float())
    for row, example in enumerate(chosen):
        (boosted,) = (weighted[row] != plain[row]).nonzero()[0]
        assert weighted[row, boosted] == 5.0
        verdict = processor.tokenizer.decode(batch["labels"][row, boosted + 1])
        assert verdict.startswith(example.answer().split(".")[0])


def test_describe_examples_ask_for_the_caption_without_giving_it(
    examples: list[SftExample], init_dir: Path
) -> None:
    described = describe_examples(examples)
    videos = {p for e in examples for p in e.video_paths}
    assert sorted(d.video_paths[0] for d in described) == sorted(videos)  # each video once
    _, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    for d in described[:3]:
        assert d.kind == "describe" and d.caption not in d.question()
        enc = encode(processor, d, [frames(d.video_paths[0])])
        answer = processor.tokenizer.decode(enc.labels[enc.labels != IGNORE])
        assert answer == d.caption + "<|im_end|>"


def test_describe_share_mixes_the_describe_task_into_each_batch(
    seed_dir: Path, init_dir: Path, tmp_path: Path
) -> None:
    plan = _plan(seed_dir, init_dir, tmp_path / "mixed", describe_share=0.25, steps=6, eval_every=3)
    train_critic(plan)
    history = read_manifest(plan.out_dir)["history"]
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert read_manifest(plan.out_dir)["training"]["describe_share"] == 0.25
    last = history[-1]
    assert last["critic/answer_loss/shuffled_video"] > 0 < last["critic/answer_loss/right_video"]
    with pytest.raises(ValueError, match="leaves no label rows"):
        train_critic(_plan(seed_dir, init_dir, tmp_path / "none", describe_share=0.99))


def test_mirror_pairs_trains_each_pair_in_both_orders(seed_dir: Path, init_dir: Path, tmp_path: Path) -> None:
    plain = _plan(seed_dir, init_dir, tmp_path / "plain", steps=2, eval_every=2)
    both = _plan(seed_dir, init_dir, tmp_path / "both", steps=2, eval_every=2, mirror_pairs=True)
    train_critic(plain)
    train_critic(both)
    train, held = split_held_out(
        examples_from_labels(read_table(seed_dir / "labels.parquet", TableKind.LABELS)), 0.2, 0
    )
    pairs = sum(e.kind == "pairwise" for e in train)
    assert pairs > 0
    rows = {p.out_dir: read_manifest(p.out_dir)["data"] for p in (plain, both)}
    assert rows[plain.out_dir] == {
        **rows[plain.out_dir],
        "rows_train": len(train),
        "rows_held_out": len(held),
    }
    assert rows[both.out_dir]["rows_train"] == len(train) + pairs  # held-out pairs stay unseen either way
    assert rows[both.out_dir]["rows_held_out"] == len(held)


def test_video_reliance_compares_right_and_shuffled_videos(
    examples: list[SftExample], init_dir: Path
) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    pointwise = [e for e in examples if e.kind == "pointwise"][:6]
    right, shuffled = video_reliance(model, processor, pointwise, frames)
    assert right != shuffled  # every row got another clip
    one_clip = [SftExample(**{**e.__dict__, "video_paths": pointwise[0].video_paths}) for e in pointwise]
    same, also_same = video_reliance(model, processor, one_clip, frames)
    assert same == also_same  # shuffling identical videos changes nothing


def test_a_few_steps_reduce_the_loss_and_write_a_checkpoint(
    seed_dir: Path, init_dir: Path, tmp_path: Path
) -> None:
    plan = _plan(seed_dir, init_dir, tmp_path / "critic")
    metrics = train_critic(plan)
    manifest = read_manifest(plan.out_dir)
    first, last = manifest["history"][0], manifest["history"][-1]
    assert last["train/loss"] < first["train/loss"]
    assert metrics["train/step"] == 12 and "critic/labels/pointwise/mean" in metrics
    assert manifest["version"] == "v1" and manifest["parent"] is None and manifest["num_frames"] == NUM_FRAMES
    assert manifest["data"]["rows_train"] > 0 and manifest["data"]["rows_held_out"] > 0
    model, _ = load_critic(plan.out_dir)  # loads with the original M-RoPE rule bound
    assert model.model.get_rope_index.__func__.__name__ == "get_rope_index"


def test_lora_trains_the_language_model_only_and_saves_merged(
    seed_dir: Path, init_dir: Path, tmp_path: Path
) -> None:
    plan = _plan(seed_dir, init_dir, tmp_path / "lora", lora=True, steps=4, eval_every=4, version="v2")
    train_critic(plan)
    before, after = (
        load_file(init_dir / "model.safetensors"),
        load_file(Path(plan.out_dir) / "model.safetensors"),
    )
    assert before.keys() == after.keys()  # merged: a plain Qwen2-VL, no adapter tensors
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # Saved names use the original layout: the language model is "model.layers.*", vision "visual.*".
    assert changed and all(k.startswith("model.layers.") and "_proj" in k for k in changed)
    assert read_manifest(plan.out_dir)["version"] == "v2"


def test_lora_with_save_adapter_writes_an_adapter_version_of_its_base(
    seed_dir: Path, init_dir: Path, tmp_path: Path
) -> None:
    plan = _plan(
        seed_dir, init_dir, tmp_path / "adapter", lora=True, save_adapter=True, steps=4, eval_every=4
    )
    train_critic(plan)
    out = Path(plan.out_dir)
    adapter = read_adapter(out)  # an adapter folder whose base is the init critic, and no full weights
    assert adapter.base == init_dir.resolve() and adapter.rank == plan.lora_rank
    assert not (out / "model.safetensors").exists() and read_manifest(out)["version"] == "v1"
    # It loads as the base with the adapter merged in, and that is the trained model, not the base.
    merged, _ = load_critic(out)
    base = load_file(init_dir / "model.safetensors")
    weights = {k: v for k, v in merged.state_dict().items() if "layers.0.self_attn.q_proj.weight" in k}
    ((name, tensor),) = weights.items()
    assert not torch.equal(tensor, base["model.layers.0.self_attn.q_proj.weight"]), name


def test_lora_from_an_adapter_version_continues_it_on_the_same_base(
    seed_dir: Path, init_dir: Path, tmp_path: Path
) -> None:
    """A refresh from an adapter version is again an adapter of the served base (not of the merged
    model), and starts where the version was."""
    first = _plan(seed_dir, init_dir, tmp_path / "r1", lora=True, save_adapter=True, steps=3, eval_every=3)
    train_critic(first)
    second = _plan(
        seed_dir, Path(first.out_dir), tmp_path / "r2", lora=True, save_adapter=True, steps=3, eval_every=3
    )
    train_critic(second)
    assert read_adapter(second.out_dir).base == init_dir.resolve()
    a = load_file(Path(first.out_dir) / "adapter_model.safetensors")
    b = load_file(Path(second.out_dir) / "adapter_model.safetensors")
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


def test_bad_input_is_refused(
    seed_dir: Path, init_dir: Path, tmp_path: Path, examples: list[SftExample]
) -> None:
    with pytest.raises(ValueError, match="empty"):
        examples_from_labels(empty_table(TableKind.LABELS))
    with pytest.raises(ValueError, match="unknown dimension"):
        examples_from_labels(read_table(seed_dir / "labels.parquet", TableKind.LABELS), ["sharpness"])
    with pytest.raises(FileNotFoundError, match="not a critic folder"):
        train_critic(_plan(seed_dir, tmp_path / "missing", tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="critic_manifest.json"):
        read_manifest(init_dir)
    train, held = split_held_out(examples, 0.3, seed=0)
    assert {e.item for e in train}.isdisjoint({e.item for e in held}) and held


@pytest.mark.timeout(240)
def test_checkpoint_loads_in_vllm_and_gives_n_answers(seed_dir: Path, init_dir: Path, tmp_path: Path) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from ipo_ray.critic.judge import SamplingConfig, score
    from ipo_ray.critic.vllm_backend import VllmBackend

    plan = _plan(seed_dir, init_dir, tmp_path / "critic", steps=2, eval_every=2)
    train_critic(plan)
    backend = VllmBackend(plan.out_dir, SamplingConfig(seed=0, max_new_tokens=8), block_size=32)
    frames = FrameCache(NUM_FRAMES)(str(next((seed_dir / "videos").glob("clip-*.mp4"))))
    results = score(
        backend, [frames], ["A red circle moves left."], ["motion_smoothness", "faithfulness"], n=4
    )
    assert [len(answers) for answers in results[0].values()] == [4, 4]


def test_bf16_autocast_trains_with_fp32_weights(seed_dir: Path, init_dir: Path, tmp_path: Path) -> None:
    # The GPU recipe's autocast path, run on the CPU (torch autocasts bf16 there too): every forward
    # of the step (answers and the video probe) under it, the saved weights still fp32.
    plan = _plan(seed_dir, init_dir, tmp_path / "bf16", bf16=True, probe_weight=1.0, steps=6, eval_every=6)
    metrics = train_critic(plan)
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and metrics["train/probe_loss"] > 0
    trained = load_file(Path(plan.out_dir) / "model.safetensors")
    assert {t.dtype for t in trained.values()} == {torch.float32}
    before = load_file(init_dir / "model.safetensors")
    assert any(not torch.equal(before[k], trained[k]) for k in before)


def test_collate_puts_the_batch_on_the_requested_device(examples: list[SftExample], init_dir: Path) -> None:
    model, processor = load_critic(init_dir)
    frames = FrameCache(NUM_FRAMES)
    encoded = [encode(processor, e, [frames(p) for p in e.video_paths], True) for e in examples[:2]]
    merge = model.config.vision_config.spatial_merge_size
    batch = collate(encoded, processor.tokenizer.pad_token_id, merge, torch.device("meta"))
    assert {v.device.type for v in batch.values()} == {"meta"}
    assert (
        batch["input_ids"].shape
        == collate(encoded, processor.tokenizer.pad_token_id, merge)["input_ids"].shape
    )
