"""Engine parity: the served critic must be the trained critic (issue 5, point 7).

Both engines score the same request's first answer token; the verdict tokens' log-probabilities
must agree. What broke parity before was positions, not weights (see `ipo_ray.critic.rope`), so the
check covers videos with more temporal groups than merged rows/columns.
"""

from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerFast

from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import CriticRequest
from ipo_ray.critic.templates import ANSWER_MARKER, PREFERENCE_WORDS, Kind
from ipo_ray.vocab import VERDICTS

if TYPE_CHECKING:  # importing vLLM takes seconds; only the vLLM side of a parity check needs it
    from vllm.lora.request import LoRARequest

    from ipo_ray.critic.vllm_backend import VllmBackend


def verdict_token_ids(tokenizer: PreTrainedTokenizerFast, kind: Kind) -> dict[str, int]:
    """Verdict → the id of the first token an answer with that verdict starts with.

    Raises:
        ValueError: two verdicts share a first token (their log-probs could not be told apart).
    """
    words = {v: v for v in VERDICTS} if kind == "pointwise" else PREFERENCE_WORDS
    ids = {
        verdict: tokenizer.encode(word + ".", add_special_tokens=False)[0] for verdict, word in words.items()
    }
    if len(set(ids.values())) != len(ids):
        raise ValueError(
            f"verdicts share a first token: {ids}; retrain the tokenizer with the template corpus"
        )
    return ids


def verdict_ids_after_marker(tokenizer: PreTrainedTokenizerFast, kind: Kind) -> dict[str, int]:
    """Verdict → the id of its first token where it follows the ``Answer:`` marker of a
    chain-of-thought answer (``"Answer: Good."``: usually a space-led token, not `verdict_token_ids`').

    Raises:
        ValueError: two verdicts share that token, or the marker's tokens change with what follows.
    """
    words = {v: v for v in VERDICTS} if kind == "pointwise" else PREFERENCE_WORDS
    marker = tokenizer.encode(ANSWER_MARKER, add_special_tokens=False)
    ids = {}
    for verdict, word in words.items():
        tokens = tokenizer.encode(f"{ANSWER_MARKER} {word}.", add_special_tokens=False)
        if tokens[: len(marker)] != marker:
            raise ValueError(f"{ANSWER_MARKER!r} tokenises differently before {word!r}: {tokens}")
        ids[verdict] = tokens[len(marker)]
    if len(set(ids.values())) != len(ids):
        raise ValueError(f"verdicts share a first token after {ANSWER_MARKER!r}: {ids}")
    return ids


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
