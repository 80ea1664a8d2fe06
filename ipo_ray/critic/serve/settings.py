"""What a replica of the critic app is given: plain settings built from the config by the driver.

Replicas never read the config tree; `server_settings` resolves and checks the critic folders here,
so a missing critic fails before any replica starts.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipo_ray.config import Config
from ipo_ray.critic.adapters import check_servable, is_adapter, read_adapter
from ipo_ray.critic.judge import Read, SamplingConfig
from ipo_ray.critic.serve.inputs import VideoLimits
from ipo_ray.critic.serve.versions import resolve_critic_path, resolve_version_path


@dataclass(frozen=True)
class ServerSettings:
    """What a replica needs, as plain values (the builder reads the config; replicas never do).

    Attributes:
        app_name: Serve app name (names the version registry).
        versions: {name: critic folder}, "default" included.
        sampling: How answers are sampled.
        samples: Default n.
        max_samples: Largest n a request may ask for.
        cot: Ask for chain-of-thought before the verdict.
        vote: How verdicts are read (``critic.vote``): ``"first_token"`` or ``"samples"``.
        num_frames: Frames sampled per video.
        limits: Video size/frame limits.
        allowed_root: Root for path inputs; None refuses paths.
        token_env: Environment variable with the bearer token; None = no auth.
        engine: `VllmBackend` keyword arguments (dtype, block_size, LoRA support, ...).
        kv_cache_gib: vLLM CPU KV cache (VLLM_CPU_KVCACHE_SPACE).
        max_lora_rank: Largest adapter rank the engines take; 0 = no adapter versions.
        both_orders: /v1/compare asks in both video orders unless the request says otherwise;
            None = both for critics that judge first, one order for the others.
    """

    app_name: str
    versions: dict[str, str]
    sampling: SamplingConfig
    samples: int
    max_samples: int
    cot: bool
    num_frames: int
    limits: VideoLimits
    allowed_root: str | None
    token_env: str | None
    engine: dict[str, Any]
    kv_cache_gib: int
    max_lora_rank: int = 0
    both_orders: bool | None = None
    vote: Read = "samples"


def server_settings(cfg: Config) -> ServerSettings:
    """The replica's plain settings from the config (critic folders resolved and checked here).

    Raises:
        FileNotFoundError: a critic folder is missing.
        AdapterError: an adapter version that the app could not serve: LoRA off or a rank above
            ``serve.max_lora_rank``, or a base other than ``critic.path``.
    """
    critic, served = cfg.critic, cfg.serve
    versions = {"default": str(resolve_critic_path(critic.path))}
    versions |= {name: str(resolve_version_path(path)) for name, path in served.versions.items()}
    for name, path in versions.items():
        if is_adapter(path):
            check_servable(read_adapter(path), Path(versions["default"]), served.max_lora_rank, name)
    engine: dict[str, Any] = {"dtype": critic.dtype, "block_size": critic.block_size}
    if served.max_lora_rank:
        engine |= {"enable_lora": True, "max_lora_rank": served.max_lora_rank, "max_loras": served.max_loras}
    return ServerSettings(
        app_name=served.app_name,
        versions=versions,
        sampling=SamplingConfig(critic.temperature, critic.top_p, critic.max_new_tokens, critic.seed),
        samples=critic.samples,
        max_samples=served.max_samples,
        cot=critic.chain_of_thought,
        num_frames=cfg.video.num_frames,
        limits=VideoLimits.from_mib(served.max_upload_mb, served.max_frames, served.max_frame_pixels),
        allowed_root=served.allowed_root,
        token_env=served.auth_token_env if served.auth else None,
        engine=engine,
        kv_cache_gib=critic.kv_cache_gib,
        max_lora_rank=served.max_lora_rank,
        both_orders=served.compare_both_orders,
        vote=critic.vote,
    )
