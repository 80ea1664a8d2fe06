"""The tiny world-critic folder: tokenizer, processor options, config ids, sizes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, AutoTokenizer

from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import CriticRequest
from ipo_ray.critic.model import CriticArchitecture, build_config, deepen_critic, relayout_critic
from ipo_ray.critic.parity import transformers_logprobs, verdict_token_ids
from ipo_ray.critic.templates import pointwise_question
from ipo_ray.critic.tokenizer import (
    PROMPT_LAYOUT_KEY,
    SPECIAL_TOKENS,
    caption_first,
    render_prompt,
    train_tokenizer,
)


def test_architecture_validation_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="≥ 32"):
        CriticArchitecture(text_hidden=64, text_heads=4)  # head_dim 16: vLLM CPU refuses it
    with pytest.raises(ValueError, match="mrope_section"):
        CriticArchitecture(mrope_section=(4, 4, 4))
    with pytest.raises(ValueError, match="vision_embed"):
        CriticArchitecture(vision_embed=48, vision_heads=2)


def test_tokenizer_is_offline_byte_level_with_qwen_specials() -> None:
    tokenizer = train_tokenizer(["A magenta triangle shrinks."], vocab_size=300)
    assert len(tokenizer) == 300
    assert tokenizer.convert_ids_to_tokens(list(range(len(SPECIAL_TOKENS)))) == list(SPECIAL_TOKENS)
    text = "Zebra ✓ ünïcode"  # far from the corpus: byte-level BPE still round-trips it
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.eos_token == "<|im_end|>"


@pytest.mark.parametrize("vocab_size", [400, 512])
def test_every_verdict_is_one_token(vocab_size: int) -> None:
    tokenizer = train_tokenizer(["A large white triangle bounces on a striped background."] * 50, vocab_size)
    for word in ("Good", "Normal", "Bad", "A", "B", "Tie"):
        assert len(tokenizer.encode(word, add_special_tokens=False)) == 1, word
        assert tokenizer.encode(word + ". Smooth.", add_special_tokens=False)[
            0
        ] == tokenizer.convert_tokens_to_ids(word)
    for kind in ("pointwise", "pairwise"):
        assert len(set(verdict_token_ids(tokenizer, kind).values())) == 3


def test_config_ids_match_the_tokenizer() -> None:
    tokenizer = train_tokenizer([], vocab_size=300)
    config = build_config(tokenizer, CriticArchitecture(vocab_size=300))
    ids = tokenizer.convert_tokens_to_ids
    assert (config.video_token_id, config.image_token_id) == (ids("<|video_pad|>"), ids("<|image_pad|>"))
    assert config.vision_start_token_id == ids("<|vision_start|>")
    assert config.text_config.vocab_size == 300
    assert config.text_config.hidden_size // config.text_config.num_attention_heads >= 32


def test_folder_reloads_with_explicit_processor_options(critic_dir: Path, clip_frames: np.ndarray) -> None:
    saved = json.loads((critic_dir / "processor_config.json").read_text())["video_processor"]
    assert saved["cap_pixels_per_frame"] is False and saved["do_sample_frames"] is False
    assert saved["size"] == {"shortest_edge": 256, "longest_edge": 4096}
    processor = AutoProcessor.from_pretrained(critic_dir)
    tokenizer = AutoTokenizer.from_pretrained(critic_dir)
    prompt = render_prompt(tokenizer, pointwise_question("A red square moves right.", "motion_smoothness"), 1)
    inputs = processor(text=[prompt], videos=[clip_frames], return_tensors="pt")
    # 16 frames of 16×16, patch 4, temporal patch 2, merge 2 → grid 8×4×4 → 8·2·2 = 32 video tokens.
    assert inputs["video_grid_thw"].tolist() == [[8, 4, 4]]
    assert int((inputs["mm_token_type_ids"] == 2).sum()) == 32
    assert (critic_dir / "model.safetensors").stat().st_size < 30e6


def test_prompt_layout_travels_with_the_critic_to_both_engines_tokenizers(
    critic_dir: Path, tmp_path: Path
) -> None:
    question = pointwise_question("A red square moves right.", "semantic_consistency")
    assert not caption_first(AutoTokenizer.from_pretrained(critic_dir))  # the default, like Qwen2-VL's
    relaid = relayout_critic(critic_dir, tmp_path / "relaid", caption_first=True)
    # transformers' processor (TransformersBackend, training) and AutoTokenizer (the vLLM backend).
    for tokenizer in (AutoProcessor.from_pretrained(relaid).tokenizer, AutoTokenizer.from_pretrained(relaid)):
        assert caption_first(tokenizer)
        prompt = render_prompt(tokenizer, question, 1)
        assert prompt.index("Caption:") < prompt.index("<|video_pad|>") < prompt.index("How is")
    assert (relaid / "model.safetensors").read_bytes() == (critic_dir / "model.safetensors").read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(relaid)
    tokenizer.init_kwargs[PROMPT_LAYOUT_KEY] = "sideways"
    with pytest.raises(ValueError, match="sideways"):
        caption_first(tokenizer)
    with pytest.raises(ValueError, match="not a full critic folder"):
        relayout_critic(tmp_path / "relaid-none", tmp_path / "x", caption_first=True)


def test_deepened_critic_answers_exactly_as_before_and_its_new_layers_learn(
    critic_dir: Path, clip_frames: np.ndarray, tmp_path: Path
) -> None:
    deeper_dir = deepen_critic(critic_dir, tmp_path / "deeper", 2)
    request = CriticRequest((clip_frames,), pointwise_question("A red square moves right.", "faithfulness"))
    before = transformers_logprobs(TransformersBackend(critic_dir), request)
    after_backend = TransformersBackend(deeper_dir)
    after = transformers_logprobs(after_backend, request)
    assert torch.allclose(before, after, atol=1e-6)
    model = after_backend.model
    depth = json.loads((critic_dir / "config.json").read_text())["text_config"]["num_hidden_layers"]
    assert len(model.model.language_model.layers) == depth + 2
    for name in ("tokenizer.json", "processor_config.json", "chat_template.jinja"):
        assert (deeper_dir / name).read_bytes() == (critic_dir / name).read_bytes()
    # The zero output projections get gradients, so the new layers start to learn on the first step.
    model.train()
    model(**after_backend.inputs(request)).logits[0, -1].logsumexp(-1).backward()
    assert all(
        float(layer.self_attn.o_proj.weight.grad.abs().sum()) > 0
        for layer in model.model.language_model.layers[depth:]
    )
    with pytest.raises(ValueError, match="extra_layers"):
        deepen_critic(critic_dir, tmp_path / "none", 0)
    with pytest.raises(ValueError, match="not a full critic folder"):
        deepen_critic(tmp_path, tmp_path / "nothing", 1)
