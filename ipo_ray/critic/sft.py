"""Critic supervised fine-tuning data (IPO Eq. 1): labels → prompt + answer tokens, loss on the answer only.

Any labels table trains the critic: the seed human labels, imported LiFT/VideoAlign data, or the
critic's own confident pseudo-labels. Each row becomes one chat: the video(s) and the templated
question (`templates`), then the assistant's answer ``"<Verdict>. <reason>"`` (`templates.format_answer`,
which `parse.parse_answer` reads back) closed by ``<|im_end|>`` so the model learns to stop. Only the
answer tokens carry loss (IPO Eq. 1: −log p(answer | video, question)).

The describe task (`describe_examples`): "describe the video" with the caption as the answer and
no caption in the question. It is mixed into critic training from scratch (``describe_share``)
because a critic that starts from random weights can answer its label questions from the caption
alone: ~25 reason tokens follow from the caption and the verdict, and the verdict's prior is ~80%
Good. Trained on labels only, the world critic settled on that prior and ignored the video (its
answer loss was equal with the right, a shuffled or a black video). Describing the clip cannot be
done without reading it, so the vision path learns; real critics start from VLMs pretrained on
captions for the same reason.

Positions: the collate builds M-RoPE position ids under vLLM's rule (`rope.mrope_position_ids`) and
passes them explicitly, so training never depends on which rule a transformers version defaults to;
they equal what `load_critic`'s patched model and vLLM compute (tests/critic/test_sft.py).

Tensors per example (L tokens, P patches of D = 3·temporal_patch·patch² values, V videos):
``input_ids`` (L,), ``labels`` (L,) with −100 outside the answer, ``mm_token_type_ids`` (L,),
``pixel_values_videos`` (P, D), ``video_grid_thw`` (V, 3).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from transformers import Qwen2VLForConditionalGeneration, Qwen2VLProcessor

from ipo_ray.critic.rope import mrope_position_ids
from ipo_ray.critic.templates import (
    DESCRIBE_QUESTION,
    Kind,
    format_answer,
    pairwise_question,
    pointwise_question,
)
from ipo_ray.critic.tokenizer import IM_END, render_prompt
from ipo_ray.data import columns as col
from ipo_ray.data import read_frames
from ipo_ray.vocab import DIMENSIONS

IGNORE = -100  # cross_entropy's ignore_index: prompt and padding positions


@dataclass(frozen=True)
class SftExample:
    """One labelled question: a row of a labels table.

    Attributes:
        label_id: The row's id.
        kind: ``"pointwise"`` (one video), ``"pairwise"`` (videos A and B), or ``"describe"`` (one
            video, answered by its caption: the describe task, training only).
        dimension: One of `ipo_ray.vocab.DIMENSIONS`.
        video_paths: One path (pointwise) or two (A, B).
        caption: The prompt the video(s) were generated from.
        verdict: Good/Normal/Bad or A/B/tie.
        reason: One sentence, possibly empty.
        cot: Ask the question with chain-of-thought (as the critic app does under
            ``critic.chain_of_thought``); the SRPO loss scores sampled answers under the question
            they were sampled from. SFT targets are direct answers, so labels leave it False.
        thinking: Chain-of-thought to train before the verdict (`augment.with_descriptions`: the
            critic's own description of the video(s)); the question then asks for it. "" = none.
    """

    label_id: str
    kind: Kind | Literal["describe"]
    dimension: str
    video_paths: tuple[str, ...]
    caption: str
    verdict: str
    reason: str
    cot: bool = False
    thinking: str = ""

    @property
    def item(self) -> tuple[str, ...]:
        """What was judged (the video or the pair): all dimensions of an item share one split."""
        return self.video_paths

    def question(self) -> str:
        """The templated question text (chain-of-thought asked for when `cot` or `thinking`)."""
        if self.kind == "describe":
            return DESCRIBE_QUESTION
        make = pointwise_question if self.kind == "pointwise" else pairwise_question
        return make(self.caption, self.dimension, self.asks_cot)  # type: ignore[arg-type]

    @property
    def asks_cot(self) -> bool:
        """Whether the question asks for chain-of-thought before the ``Answer:`` line."""
        return self.cot or bool(self.thinking)

    def answer(self, with_reasons: bool = True) -> str:
        """The target text; verdict only when `with_reasons` is False (LiFT Table 2's ablation).

        A describe example's answer is its caption, whatever `with_reasons`; `thinking`, when
        given, comes first (`templates.format_answer`).
        """
        if self.kind == "describe":
            return self.caption
        reason = self.reason if with_reasons else ""
        return format_answer(self.kind, self.verdict, reason, self.thinking or None)


def examples_from_labels(table: pa.Table, dimensions: Sequence[str] = DIMENSIONS) -> list[SftExample]:
    """Turns a labels table (`TableKind.LABELS`) into examples, keeping rows of `dimensions`.

    Raises:
        ValueError: the table has no rows, an unknown dimension is asked for, or no row is left.
    """
    unknown = set(dimensions) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown dimension(s) {sorted(unknown)}; use some of {DIMENSIONS}")
    if table.num_rows == 0:
        raise ValueError("the labels table is empty: nothing to train or evaluate on")
    rows = table.select(
        [col.LABEL_ID, col.KIND, col.DIMENSION, col.VIDEO_PATH, col.VIDEO_PATH_B]
        + [col.PROMPT, col.VERDICT, col.REASON]
    ).to_pylist()
    examples = []
    for row in rows:
        if row[col.DIMENSION] not in dimensions:
            continue
        pairwise = row[col.KIND] == "pairwise"
        if pairwise and not row[col.VIDEO_PATH_B]:
            raise ValueError(f"label {row[col.LABEL_ID]!r} is pairwise but has no video_path_b")
        paths = (row[col.VIDEO_PATH], row[col.VIDEO_PATH_B]) if pairwise else (row[col.VIDEO_PATH],)
        examples.append(
            SftExample(
                label_id=row[col.LABEL_ID],
                kind=row[col.KIND],
                dimension=row[col.DIMENSION],
                video_paths=paths,
                caption=row[col.PROMPT],
                verdict=row[col.VERDICT],
                reason=row[col.REASON],
            )
        )
    if not examples:
        raise ValueError(f"no label rows for dimensions {list(dimensions)}")
    return examples


def describe_examples(examples: Sequence[SftExample]) -> list[SftExample]:
    """One describe example per distinct video of `examples` (see the module docstring).

    The answer is the prompt the video was made from. Where a clip is defective (a wrong colour,
    a missing motion) that caption is partly wrong; the labels' verdicts are what teach the
    critic to spot those clips, so the noise is accepted.

    Args:
        examples: Training examples (pass the training split only: held-out videos stay unseen).

    Returns:
        Examples of kind ``"describe"``, in order of first appearance, ids ``describe:<path>``.
    """
    out: dict[str, SftExample] = {}
    for e in examples:
        for path in e.video_paths:
            if path not in out:
                out[path] = SftExample(
                    label_id=f"describe:{path}",
                    kind="describe",
                    dimension="",
                    video_paths=(path,),
                    caption=e.caption,
                    verdict="",
                    reason="",
                )
    return list(out.values())


def split_held_out(
    examples: Sequence[SftExample], fraction: float, seed: int
) -> tuple[list[SftExample], list[SftExample]]:
    """(train, held-out), split by judged item so no video of the held-out set is ever trained on.

    A video judged pointwise may also appear in a pair; such overlap is rare in world seed sets
    (pairs are rendered separately) and is not chased here.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    items = sorted({e.item for e in examples})
    order = np.random.default_rng(seed).permutation(len(items))
    held = {items[i] for i in order[: round(fraction * len(items))]}
    return [e for e in examples if e.item not in held], [e for e in examples if e.item in held]


class FrameCache:
    """Decoded frames per video path, read once (uniform sampling, `read_frames`)."""

    def __init__(self, num_frames: int) -> None:
        self.num_frames = num_frames
        self._frames: dict[str, np.ndarray] = {}

    def __call__(self, path: str) -> np.ndarray:
        """uint8 (num_frames, H, W, 3)."""
        if path not in self._frames:
            self._frames[path] = read_frames(Path(path), self.num_frames)
        return self._frames[path]


@dataclass(frozen=True)
class Encoded:
    """One example's tensors (shapes in the module docstring); `labels` is None for prompt-only."""

    input_ids: torch.Tensor
    labels: torch.Tensor | None
    mm_token_type_ids: torch.Tensor
    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor


def encode(
    processor: Qwen2VLProcessor,
    example: SftExample,
    frames: Sequence[np.ndarray],
    with_answer: bool = True,
    with_reasons: bool = True,
    answer: str | None = None,
    prefix: str = "",
) -> Encoded:
    """Tokenises one example: the prompt exactly as the backends render it, then the answer tokens.

    The answer is tokenised on its own and appended: generation continues from the prompt's ids,
    so this is the split the model sees when it answers (the prompt ends with a newline, where the
    byte-level BPE never merges across).

    Args:
        processor: The critic's processor (tokenizer + video processor).
        example: The labelled question.
        frames: One uint8 (T, H, W, 3) array per video of the example.
        with_answer: Append the answer and build labels; False gives the prompt alone (evaluation).
        with_reasons: Answer with the reason (see `SftExample.answer`).
        answer: Answer text to append instead of the example's own (a sampled critic answer,
            for the SRPO loss); None = `example.answer(with_reasons)`.
        prefix: With `with_answer` False, the start of an answer to append, unlabelled (the
            chain-of-thought before the verdict, in evaluation).
    """
    tokenizer = processor.tokenizer
    prompt = render_prompt(tokenizer, example.question(), len(example.video_paths))
    enc = processor(text=[prompt], videos=list(frames), return_tensors="pt")
    ids, types = enc["input_ids"][0], enc["mm_token_type_ids"][0]
    labels = None
    if with_answer:
        text = example.answer(with_reasons) if answer is None else answer
        tokens = tokenizer.encode(text, add_special_tokens=False)
        answer_ids = torch.tensor([*tokens, tokenizer.convert_tokens_to_ids(IM_END)], dtype=ids.dtype)
        labels = torch.cat([torch.full_like(ids, IGNORE), answer_ids])
        ids = torch.cat([ids, answer_ids])
        types = torch.cat([types, torch.zeros_like(answer_ids)])
    elif prefix:
        prefix_ids = torch.tensor(tokenizer.encode(prefix, add_special_tokens=False), dtype=ids.dtype)
        ids = torch.cat([ids, prefix_ids])
        types = torch.cat([types, torch.zeros_like(prefix_ids)])
    return Encoded(ids, labels, types, enc["pixel_values_videos"], enc["video_grid_thw"])


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's weights are (the device its batches must be on)."""
    return next(model.parameters()).device


def collate(
    batch: Sequence[Encoded], pad_id: int, merge_size: int, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Right-pads a batch and adds M-RoPE positions under vLLM's rule, on `device`.

    Returns:
        ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` (B, Lmax); ``labels`` (B, Lmax)
        with −100 on prompt and padding (absent for prompt-only examples); ``position_ids``
        (3, B, Lmax); ``pixel_values_videos`` (ΣP, D) and ``video_grid_thw`` (ΣV, 3) in batch order.
    """
    if not batch:
        raise ValueError("empty batch")
    length = max(e.input_ids.shape[0] for e in batch)

    def pad(tensors: list[torch.Tensor], value: int) -> torch.Tensor:
        return torch.stack([F.pad(t, (0, length - t.shape[0]), value=value) for t in tensors])

    input_ids = pad([e.input_ids for e in batch], pad_id)
    mask = pad([torch.ones_like(e.input_ids) for e in batch], 0)
    types = pad([e.mm_token_type_ids for e in batch], 0)
    grids = torch.cat([e.video_grid_thw for e in batch])
    positions, _ = mrope_position_ids(input_ids, types, None, grids, merge_size, mask)
    out = {
        "input_ids": input_ids,
        "attention_mask": mask,
        "mm_token_type_ids": types,
        "position_ids": positions,
        "pixel_values_videos": torch.cat([e.pixel_values_videos for e in batch]),
        "video_grid_thw": grids,
    }
    if all(e.labels is not None for e in batch):
        out["labels"] = pad([e.labels for e in batch], IGNORE)  # type: ignore[misc]
    # Built on the CPU (the encoded examples are cached there), moved once.
    return {k: v.to(device) for k, v in out.items()}


def answer_weights(labels: torch.Tensor, verdict_weight: float = 1.0) -> torch.Tensor:
    """Loss weight of each next-token prediction: 0 outside the answer, `verdict_weight` on the
    answer's first token (the verdict), 1 on the rest.

    With weight 1 this is IPO Eq. 1's plain token mean. A larger weight is for critics trained from
    scratch on long reasons: the verdict is one token of ~25, the reasons are learnt within minutes,
    and the verdict then stayed a constant answer (measured: "Good" / "B" on every held-out row
    after 600 steps at weight 1, assets/world_critic/README.md).

    Args:
        labels: (B, L), −100 outside the answer.
        verdict_weight: ≥ 0.

    Returns:
        (B, L−1) float weights; entry i weighs the prediction of token i+1.
    """
    answer = labels[:, 1:] != IGNORE
    first = answer & ~F.pad(answer[:, :-1], (1, 0), value=False)  # an answer's first position
    return answer.float() + (verdict_weight - 1.0) * first.float()


def answer_loss_sum(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted summed cross-entropy of the answer tokens (IPO Eq. 1: −Σ w log p(token | before)).

    A sum, not a mean, so that workers can divide by the global weight: 1 worker × batch B and
    2 workers × B/2 then take the same step.

    Args:
        logits: (N, V) next-token logits at the N positions that predict an answer token.
        targets: (N,) those answer tokens.
        weights: (N,) from `answer_weights`.
    """
    return (F.cross_entropy(logits.float(), targets, reduction="none") * weights).sum()


def answer_loss(
    model: Qwen2VLForConditionalGeneration, batch: dict[str, torch.Tensor], verdict_weight: float = 1.0
) -> tuple[torch.Tensor, float]:
    """The summed weighted answer loss of a collated batch and its total weight.

    The language-model head runs only where an answer token is predicted: with a vocabulary of
    a few thousand it costs as much as a whole layer per position, and prompts are ~5× longer
    than answers.

    Args:
        model: The critic (LoRA layers, if any, injected in place).
        batch: From `collate`, with ``labels``.
        verdict_weight: See `answer_weights`.
    """
    logits, targets, predicts = _answer_logits(model, batch)
    weights = answer_weights(batch["labels"], verdict_weight)
    return answer_loss_sum(logits, targets[predicts], weights[predicts]), float(weights.sum())


def answer_logps(model: Qwen2VLForConditionalGeneration, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each sequence's summed answer-token log-probability, log p(answer | video, question).

    The closing ``<|im_end|>`` is one of the answer tokens, as in `answer_loss`.

    Args:
        model: The critic.
        batch: From `collate`, with ``labels``.

    Returns:
        (B,) float32 sums over each row's answer tokens (differentiable).
    """
    logits, targets, predicts = _answer_logits(model, batch)
    token_logps = -F.cross_entropy(logits.float(), targets[predicts], reduction="none")  # (N,)
    rows = predicts.nonzero()[:, 0]  # (N,) the batch row of each predicted token
    sums = torch.zeros(predicts.shape[0], dtype=token_logps.dtype, device=token_logps.device)
    return sums.index_add(0, rows, token_logps)


def _answer_logits(
    model: Qwen2VLForConditionalGeneration, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits (N, V) at the N answer-predicting positions, targets (B, L−1), mask (B, L−1))."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hidden = model.model(**inputs).last_hidden_state  # (B, L, H)
    targets = batch["labels"][:, 1:]
    predicts = targets != IGNORE  # (B, L-1): position i predicts token i+1
    return model.lm_head(hidden[:, :-1][predicts]), targets, predicts
