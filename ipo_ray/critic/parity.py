"""Engine parity: the served critic must be the trained critic (issue 5, point 7).

Both engines score the same request's first answer token; the verdict tokens' log-probabilities
must agree. What broke parity before was positions, not weights (see `ipo_ray.critic.rope`), so the
check covers videos with more temporal groups than merged rows/columns.
"""

from typing import TYPE_CHECKING

import torch

from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import CriticRequest
from ipo_ray.critic.verdict_tokens import verdict_ids_after_marker, verdict_token_ids

if TYPE_CHECKING:  # importing vLLM takes seconds; only the vLLM side of a parity check needs it
    from vllm.lora.request import LoRARequest

    from ipo_ray.critic.vllm_backend import VllmBackend

__all__ = ["transformers_logprobs", "verdict_ids_after_marker", "verdict_token_ids", "vllm_logprobs"]


@torch.inference_mode()
def transformers_logprobs(backend: TransformersBackend, request: CriticRequest) -> torch.Tensor:
    """Log-softmax over the vocabulary of the first answer token, shape (V,), fp32."""
    inputs = backend.inputs(request)
    logits = backend.model(**inputs, logits_to_keep=1).logits[0, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def vllm_logprobs(
    backend: "VllmBackend",
    requests: list[CriticRequest],
    vocab_size: int,
    lora: "LoRARequest | None" = None,
) -> torch.Tensor:
    """The same for a `VllmBackend`, all requests in one engine call; shape (len(requests), V).

    The engine must allow ``max_logprobs ≥ vocab_size`` (an engine argument). Log-probs are vLLM's
    raw ones (before temperature), so the sampling settings do not matter. With `lora`, the engine
    answers as that adapter version (`ipo_ray.critic.adapters`).
    """
    params = backend.sampling_params(1, max_tokens=1, temperature=0.0, logprobs=vocab_size)
    prompts = [backend.prompt(r) for r in requests]
    outputs = backend.engine.generate(prompts, params, use_tqdm=False, lora_request=lora)
    result = torch.full((len(requests), vocab_size), float("-inf"))
    for row, output in enumerate(outputs):
        for token_id, logprob in output.outputs[0].logprobs[0].items():
            result[row, token_id] = logprob.logprob
    return result
