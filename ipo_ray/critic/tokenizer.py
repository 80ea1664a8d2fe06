"""An offline byte-level BPE tokenizer with Qwen2-VL's special tokens and chat template.

Nothing is fetched: the BPE merges are trained here with `tokenizers` on the critic's own texts
(questions, answers, captions, reasons), then wrapped in transformers' `PreTrainedTokenizerFast` so
that transformers' Qwen2-VL processor and vLLM load it from a folder like any checkpoint's tokenizer.
Byte-level BPE never produces an unknown token: any text, even one far from the training corpus,
encodes (into more pieces).

The chat template is Qwen2-VL's turn format (``<|im_start|>role\\n…<|im_end|>\\n``) with a video
written as ``<|vision_start|><|video_pad|><|vision_end|>``; the processors (transformers and vLLM)
expand the one ``<|video_pad|>`` into as many as the video has merged patches. No system turn: the
tiny critic gains nothing from one and every token costs.
"""

from collections.abc import Iterable
from typing import Final

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ipo_ray.critic.templates import (
    ANSWER_MARKER,
    DESCRIBE_QUESTION,
    PAIRWISE_QUESTIONS,
    POINTWISE_QUESTIONS,
    PREFERENCE_WORDS,
    format_answer,
    messages,
    pairwise_question,
    pointwise_question,
)
from ipo_ray.vocab import DIMENSIONS, VERDICTS

EOS: Final = "<|endoftext|>"
IM_START: Final = "<|im_start|>"
IM_END: Final = "<|im_end|>"
VISION_START: Final = "<|vision_start|>"
VISION_END: Final = "<|vision_end|>"
IMAGE_PAD: Final = "<|image_pad|>"
VIDEO_PAD: Final = "<|video_pad|>"
# Order fixes the ids 0..6, so every tokenizer built here shares them.
SPECIAL_TOKENS: Final = (EOS, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)

# The tokenizer-config key that records where the critic reads the caption (`caption_first`).
PROMPT_LAYOUT_KEY: Final = "critic_prompt_layout"
VIDEO_FIRST: Final = "video_first"
CAPTION_FIRST: Final = "caption_first"
PROMPT_LAYOUTS: Final = (VIDEO_FIRST, CAPTION_FIRST)

# The tokenizer-config key that records how the critic answers pairwise questions (`judges_first`).
PAIRWISE_READ_KEY: Final = "critic_pairwise_read"
DIRECT: Final = "direct"
JUDGE_FIRST: Final = "judge_first"
PAIRWISE_READS: Final = (DIRECT, JUDGE_FIRST)

CHAT_TEMPLATE: Final = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'video' -%}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def template_corpus() -> list[str]:
    """Every fixed text the critic reads or writes: questions, chat scaffolding, answer words.

    Training the BPE on these (plus captions and reasons) makes them a few tokens each.
    """
    texts = [ANSWER_MARKER, DESCRIBE_QUESTION, "user", "assistant", "Video A:", "Video B:"]
    for dimension in DIMENSIONS:
        texts += [POINTWISE_QUESTIONS[dimension], PAIRWISE_QUESTIONS[dimension]]
        for cot in (False, True):
            texts += [
                pointwise_question("a caption", dimension, cot),
                pairwise_question("a caption", dimension, cot),
            ]
    return texts + answer_openings()


def answer_openings() -> list[str]:
    """How every answer starts: ``Good.`` … ``Tie.``, bare and after the chain-of-thought marker."""
    openings = [format_answer("pointwise", v, "") for v in VERDICTS]
    openings += [f"{word}." for word in PREFERENCE_WORDS.values()]
    return openings + [f"{ANSWER_MARKER} {opening}" for opening in openings]


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Trains a byte-level BPE on `corpus` plus `template_corpus()` and wraps it for transformers.

    Args:
        corpus: Extra texts: captions, reasons, chain-of-thought examples.
        vocab_size: Total vocabulary including the 256 byte tokens and the 7 special tokens; ≥ 263.
            From about 400 on, every verdict (Good, Normal, Bad, A, B, Tie) is a single token
            (tests/critic/test_model.py checks 400 and 512).

    Returns:
        A tokenizer with Qwen2-VL's special tokens (ids 0–6), ``<|im_end|>`` as end of sequence,
        ``<|endoftext|>`` as padding, and `CHAT_TEMPLATE`.
    """
    floor = 256 + len(SPECIAL_TOKENS)
    if vocab_size < floor:
        raise ValueError(f"vocab_size must be ≥ {floor} (256 bytes + {len(SPECIAL_TOKENS)} special tokens)")
    bpe = Tokenizer(models.BPE())
    # ByteLevel with add_prefix_space=False: " Good" and "Good" stay different tokens, as in GPT-2/Qwen.
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Templates are repeated so their merges win over rarer caption words, and answer openings more
    # still, so each verdict is one token: its log-probability is then one number (parity checks,
    # P(Good) as a soft reward), and "Bad" does not share a first token with the preference "B".
    texts = [*template_corpus() * 8, *answer_openings() * 64, *corpus]
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,
        pad_token=EOS,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )
    return tokenizer


def caption_first(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether this critic reads the caption before the videos (`templates.messages`).

    The layout is a property of the trained critic, so it lives in its tokenizer's config (saved in
    ``tokenizer_config.json``, read back by transformers and by the vLLM backend alike); a tokenizer
    without the key, a real Qwen2-VL's included, reads the videos first.
    """
    return _setting(tokenizer, PROMPT_LAYOUT_KEY, PROMPT_LAYOUTS) == CAPTION_FIRST


def set_caption_first(tokenizer: PreTrainedTokenizerBase, value: bool) -> None:
    """Fixes the critic's prompt layout in its tokenizer's config (takes effect when saved)."""
    tokenizer.init_kwargs[PROMPT_LAYOUT_KEY] = CAPTION_FIRST if value else VIDEO_FIRST


def judges_first(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether this critic answers a pairwise question after its own pointwise verdicts on both
    videos (`critic.train.judge_first`; served so by POST /v1/compare, read so by evaluation).

    Like the prompt layout, a property of the trained critic kept in its tokenizer's config; a
    tokenizer without the key answers directly.
    """
    return _setting(tokenizer, PAIRWISE_READ_KEY, PAIRWISE_READS) == JUDGE_FIRST


def _setting(tokenizer: PreTrainedTokenizerBase, key: str, allowed: tuple[str, ...]) -> str:
    """A critic setting kept in its tokenizer's config; the first allowed value when unset."""
    value = tokenizer.init_kwargs.get(key, allowed[0])
    if value not in allowed:
        raise ValueError(f"tokenizer {key}={value!r}; expected one of {allowed}")
    return value


def set_judges_first(tokenizer: PreTrainedTokenizerBase, value: bool) -> None:
    """Fixes the critic's pairwise read in its tokenizer's config (takes effect when saved)."""
    tokenizer.init_kwargs[PAIRWISE_READ_KEY] = JUDGE_FIRST if value else DIRECT


def render_prompt(tokenizer: PreTrainedTokenizerBase, question: str, num_videos: int) -> str:
    """The full prompt text for one question, ending where the assistant's answer begins.

    Args:
        tokenizer: From `train_tokenizer` (or any tokenizer with a Qwen2-VL chat template); its
            prompt layout (`caption_first`) places the caption.
        question: From `templates.pointwise_question` / `pairwise_question`.
        num_videos: 1 or 2; one ``<|video_pad|>`` per video, expanded later by the processor.
    """
    return tokenizer.apply_chat_template(
        messages(question, num_videos, caption_first(tokenizer)), tokenize=False, add_generation_prompt=True
    )
