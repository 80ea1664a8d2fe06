"""The transformers backend: `generate` on a local critic folder, one request at a time.

The fallback engine (and the reference the vLLM backend is checked against): fp32, the original
M-RoPE rule bound by `load_critic`, n samples per request via ``num_return_sequences`` (the prompt
is encoded once per request and expanded, so the video prefix is not recomputed n times in the
vision tower; the language model's prefill is repeated per sample). Requests run one by one: no
padding, so no padding-dependent positions to get wrong, and CPU batching gains little.
"""

import os
from collections.abc import Sequence
from typing import Any

import torch

from ipo_ray.critic.judge import CriticRequest, Sampled, SamplingConfig
from ipo_ray.critic.model import load_critic
from ipo_ray.critic.tokenizer import render_prompt


class TransformersBackend:
    """Samples critic answers with transformers' `generate`.

    Args:
        path: A critic folder (`ipo_ray.critic.model.build_critic` or a trained checkpoint).
        sampling: How to sample.
    """

    def __init__(self, path: str | os.PathLike[str], sampling: SamplingConfig | None = None) -> None:
        self.sampling = sampling or SamplingConfig()
        self.model, self.processor = load_critic(path)

    @property
    def tokenizer(self) -> Any:  # noqa: ANN401 - the processor's tokenizer
        """The critic's tokenizer."""
        return self.processor.tokenizer

    def generate(self, requests: Sequence[CriticRequest], n: int) -> list[list[str]]:
        """Returns n sampled texts per request (see `judge.CriticBackend`)."""
        return [s.texts for s in self.sample(requests, n, 0)]

    def sample(self, requests: Sequence[CriticRequest], n: int, top_logprobs: int) -> list[Sampled]:
        """n sampled texts per request and, for ``top_logprobs > 0``, the first token's most likely
        tokens (`judge.FirstTokenBackend`): read from the logits `generate` already computed."""
        if self.sampling.temperature == 0 and n > 1:
            raise ValueError(
                "greedy decoding (temperature 0) gives n identical answers; use n=1 or a temperature > 0"
            )
        if self.sampling.seed is not None:
            torch.manual_seed(self.sampling.seed)
        return [self._generate_one(request, n, top_logprobs) for request in requests]

    def inputs(self, request: CriticRequest) -> dict[str, torch.Tensor]:
        """The processor's tensors for one request (ids, mm_token_type_ids, pixels, grids); the
        answer's given start, if any, ends the prompt."""
        prompt = render_prompt(self.processor.tokenizer, request.question, len(request.videos))
        prompt += request.answer_prefix
        return self.processor(text=[prompt], videos=list(request.videos), return_tensors="pt")

    @torch.inference_mode()
    def _generate_one(self, request: CriticRequest, n: int, top_logprobs: int) -> Sampled:
        inputs = self.inputs(request)
        greedy = self.sampling.temperature == 0
        sampling = {} if greedy else {"temperature": self.sampling.temperature, "top_p": self.sampling.top_p}
        output = self.model.generate(
            **inputs,
            do_sample=not greedy,
            num_return_sequences=n,
            max_new_tokens=self.sampling.max_new_tokens,
            top_k=0,  # no top-k cut: vLLM samples from the whole vocabulary by default, so do we
            output_logits=top_logprobs > 0,  # raw logits, before temperature, as vLLM's log-probs
            return_dict_in_generate=True,
            **sampling,
        )
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        if top_logprobs <= 0:
            return Sampled(texts, {})
        logprobs = torch.log_softmax(output.logits[0][0].float(), dim=-1)  # first step, first sample
        top = torch.topk(logprobs, min(top_logprobs, logprobs.shape[0]))
        return Sampled(texts, dict(zip(top.indices.tolist(), top.values.tolist(), strict=True)))
