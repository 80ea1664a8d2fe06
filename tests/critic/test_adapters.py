"""Critic versions as LoRA adapters: checks before serving, engine parity, and the replica's engine thread."""

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ipo_ray.config import ConfigError, load_config
from ipo_ray.critic.adapters import AdapterError, check_servable, is_adapter, read_adapter
from ipo_ray.critic.hf_backend import TransformersBackend
from ipo_ray.critic.judge import CriticRequest, SamplingConfig
from ipo_ray.critic.parity import transformers_logprobs, verdict_token_ids, vllm_logprobs
from ipo_ray.critic.templates import pointwise_question

RANK = 8  # = conftest.LORA_RANK, the rank of make_adapter's adapters
PROMPT = "A red square moves right."


@pytest.fixture(scope="module")
def adapter_dir(critic_dir: Path, tmp_path_factory: pytest.TempPathFactory, make_adapter) -> Path:  # noqa: ANN001
    return make_adapter(critic_dir, tmp_path_factory.mktemp("adapter") / "v2")


def test_an_adapter_folder_names_its_base_and_rank(adapter_dir: Path, critic_dir: Path) -> None:
    assert is_adapter(adapter_dir) and not is_adapter(critic_dir)
    info = read_adapter(adapter_dir)
    assert info.base == critic_dir.resolve() and info.rank == RANK and info.path == adapter_dir.resolve()


def test_adapters_the_app_cannot_serve_are_refused_with_the_setting_to_change(
    adapter_dir: Path, critic_dir: Path, tmp_path: Path
) -> None:
    info = read_adapter(adapter_dir)
    with pytest.raises(AdapterError, match="serve.max_lora_rank is 0"):
        check_servable(info, critic_dir, 0, "v2")
    with pytest.raises(AdapterError, match="above serve.max_lora_rank"):
        check_servable(info, critic_dir, 1, "v2")
    with pytest.raises(AdapterError, match="adapters are served on the default critic's engine"):
        check_servable(info, tmp_path, 16, "v2")
    check_servable(info, critic_dir, 16, "v2")  # servable: no error
    # A broken config: a base that is no critic folder, or not a LoRA adapter at all.
    broken = tmp_path / "broken"
    broken.mkdir()
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (broken / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": "nowhere"}))
    with pytest.raises(AdapterError, match="is not a critic folder"):
        read_adapter(broken)
    (broken / "adapter_config.json").write_text(json.dumps(config | {"peft_type": "IA3"}))
    with pytest.raises(AdapterError, match="LoRA only"):
        read_adapter(broken)


def test_the_app_settings_refuse_an_adapter_version_before_any_replica_starts(
    adapter_dir: Path, critic_dir: Path
) -> None:
    from ipo_ray.critic.serve.settings import server_settings

    overrides = [f"critic.path={critic_dir}", f'serve.versions={{"v2": "{adapter_dir}"}}']
    with pytest.raises(AdapterError, match="serve.max_lora_rank is 0"):
        server_settings(load_config(None, overrides))
    settings = server_settings(load_config(None, [*overrides, "serve.max_lora_rank=16"]))
    assert settings.engine["enable_lora"] and settings.engine["max_lora_rank"] == 16
    assert settings.versions["v2"] == str(adapter_dir.resolve())


def test_adapter_training_settings_are_checked_at_load() -> None:
    with pytest.raises(ConfigError, match="save_adapter"):
        load_config(None, ["critic.train.save_adapter=true"])
    load_config(None, ["critic.train.save_adapter=true", "critic.train.lora=true", "critic.train.init=x"])
    # The main loop's adapter refreshes: LoRA on, and an app whose engines take their rank.
    with pytest.raises(ConfigError, match="needs loop.srpo.lora"):
        load_config(None, ["loop.srpo.save_adapter=true", "serve.max_lora_rank=8"])
    with pytest.raises(ConfigError, match="serve.max_lora_rank"):
        load_config(None, ["loop.srpo.save_adapter=true", "loop.srpo.lora=true", "critic.train.lora_rank=16"])
    load_config(None, ["loop.srpo.save_adapter=true", "loop.srpo.lora=true", "serve.max_lora_rank=8"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_adapter_served_on_its_base_engine_is_the_trained_adapter(
    adapter_dir: Path, critic_dir: Path, clip_frames: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM with the LoRA request ≡ transformers with the adapter merged (first answer token's
    log-probs), the base engine still answers as the base, and the replica's engine thread serves
    both versions from one engine."""
    from vllm.lora.request import LoRARequest

    from ipo_ray.critic.serve.engine import EngineHost
    from ipo_ray.critic.vllm_backend import VllmBackend

    # CPU settings from ../shared/notes/cpu-stack.md: a small KV cache, an in-process engine.
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    requests = [
        CriticRequest((clip_frames,), pointwise_question(PROMPT, "motion_smoothness")),
        CriticRequest((clip_frames[::-1].copy(),), pointwise_question(PROMPT, "faithfulness")),
    ]
    served = VllmBackend(
        critic_dir,
        SamplingConfig(seed=0, max_new_tokens=6),
        block_size=32,
        max_logprobs=1024,
        enable_lora=True,
        max_lora_rank=RANK,
        max_loras=2,
    )
    lora = LoRARequest("v2", 1, str(adapter_dir))
    hf_adapter, hf_base = TransformersBackend(adapter_dir), TransformersBackend(critic_dir)
    expected = torch.stack([transformers_logprobs(hf_adapter, r) for r in requests])
    base = torch.stack([transformers_logprobs(hf_base, r) for r in requests])
    got = vllm_logprobs(served, requests, expected.shape[1], lora=lora)
    ids = list(verdict_token_ids(hf_base.processor.tokenizer, "pointwise").values())
    assert (expected[:, ids] - base[:, ids]).abs().max() > 0.05  # the adapter really changes verdicts
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(vllm_logprobs(served, requests, expected.shape[1]), base, atol=1e-4, rtol=0)

    host = EngineHost()

    async def run() -> list[list[list[str]]]:
        base_engine = await host.load(lambda: served)
        adapter_engine = base_engine.with_adapter(lora)
        answers = await asyncio.gather(
            base_engine.generate(requests, 2), adapter_engine.generate(requests, 3)
        )
        base_engine.close()  # the adapter still holds the engine: it keeps answering
        answers.append(await adapter_engine.generate(requests[:1], 1))
        adapter_engine.close()
        return answers

    try:
        both = asyncio.run(run())
    finally:
        host.close()
    assert [[len(a) for a in r] for r in both] == [[2, 2], [3, 3], [1]]
    assert host._handles == {}  # the last handle retired the engine
