"""Config section `serve`: the critic's Ray Serve HTTP app: address, limits, auth, replicas.

The model itself (folder, engine, sampling) is the `critic` section; this section only says how it
is exposed. Secrets never live here: `auth_token_env` names the environment variable that holds the
bearer token, read by each replica when it starts.
"""

from typing import Literal, Self

from pydantic import Field, model_validator

from ipo_ray.config.base import Section, raise_problems


class ServeConfig(Section):
    """The critic's Ray Serve HTTP app: address, limits, auth, replicas."""

    app_name: str = Field("critic", min_length=1, description="Serve application name.")
    host: str = Field(
        "127.0.0.1", description="HTTP bind address; loopback by default, 0.0.0.0 exposes it on the network."
    )
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of Serve's proxy.")
    route_prefix: str = Field(
        "/", pattern=r"^/", description="URL prefix of the app, e.g. /critic; '/' serves at the root."
    )
    allowed_root: str | None = Field(
        None,
        description="Folder under which videos may be named by path (resolved, symlinks included); "
        "null = path inputs refused (403), uploads only.",
    )
    max_upload_mb: float = Field(
        16.0, gt=0, description="Largest video accepted, upload or path, in MiB; larger is refused (413)."
    )
    max_frames: int = Field(
        4096, ge=1, description="Most frames a video may have; more is refused (413) before decoding."
    )
    max_frame_pixels: int = Field(
        1920 * 1080, ge=1, description="Largest frame area (width × height) accepted; more is refused (413)."
    )
    max_samples: int = Field(
        32, ge=1, description="Largest per-request override of critic.samples (n) a client may ask for."
    )
    compare_both_orders: bool | None = Field(
        None,
        description="POST /v1/compare also asks every question with video B shown first and pools "
        "both orders' answers (twice the samples), so a critic's preference for a position cannot "
        "decide the vote; a request's both_orders overrides it. null = both orders for critics that "
        "judge first (their bar was measured so), one order for the others.",
    )
    auth: bool = Field(False, description="Require 'Authorization: Bearer <token>' on every /v1 route.")
    auth_token_env: str = Field(
        "IPO_RAY_CRITIC_TOKEN",
        min_length=1,
        description="Environment variable holding the bearer token on each replica (never the token itself).",
    )
    replicas: int = Field(
        1, ge=1, description="Replicas of the app; each holds every critic version's engine."
    )
    cpus_per_replica: float = Field(
        0.5, gt=0, description="Ray CPUs reserved per replica; fractional so the critic shares small nodes."
    )
    gpus_per_replica: float = Field(
        0.0,
        ge=0,
        description=(
            "Ray GPUs reserved per replica; 1 on GPU clusters: Ray hides GPUs from an actor that "
            "reserves none, and vLLM then finds no device."
        ),
    )
    max_ongoing_requests: int = Field(
        64, ge=1, description="Requests in flight per replica; vLLM batches them, so keep it ≥ clients."
    )
    request_timeout_s: float = Field(
        120.0, gt=0, description="Serve proxy's per-request timeout in seconds (applies when Serve starts)."
    )
    max_lora_rank: Literal[0, 1, 8, 16, 32, 64, 128, 256, 320, 512] = Field(
        0,
        description="Largest LoRA rank of adapter versions (folders with adapter_config.json), served on "
        "their base critic's engine with no second copy of the weights; 0 = no adapter versions (each "
        "version is a full checkpoint with an engine of its own). vLLM accepts these ranks only.",
    )
    max_loras: int = Field(
        4, ge=1, description="Adapter versions one engine batches together (vLLM max_loras)."
    )
    versions: dict[str, str] = Field(
        default_factory=dict,
        description="Extra critic versions {name: folder}, selectable per request; "
        "'default' is critic.path and cannot be redefined here.",
    )

    def __hash__(self) -> int:
        # pydantic's frozen hash hashes field values, and a dict is unhashable: hash the JSON instead,
        # so the whole config stays usable as a cache key.
        return hash(self.model_dump_json())

    @model_validator(mode="after")
    def _check_versions(self) -> Self:
        problems: list[tuple[str, str]] = []
        if "default" in self.versions:
            problems.append(("versions", "'default' is critic.path; give the extra version another name"))
        bad = [name for name in self.versions if not name or "/" in name or name.strip() != name]
        if bad:
            problems.append(
                ("versions", f"names must be non-empty, without '/' or spaces at the ends: {bad}")
            )
        raise_problems(problems)
        return self
