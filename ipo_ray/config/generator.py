"""Config section `generator`: the video generator being aligned (backend, model, K, sampling, actors)."""

from typing import Literal, Self

from pydantic import Field, model_validator

from ipo_ray.config.base import Section, raise_problems


class GeneratorConfig(Section):
    """The policy: backend and checkpoint, how K candidates per prompt are sampled, by how many actors."""

    backend: Literal["world", "cogvideox", "wan"] = Field(
        "world",
        description="Generator backend: the embedded world model, or CogVideoX / Wan through diffusers.",
    )
    model_path: str | None = Field(
        None,
        description="Model folder (diffusers pipeline or world checkpoint); null = the shipped small "
        "world model.",
    )
    num_candidates: int = Field(
        8, ge=2, description="K candidates per prompt (Dual-IPO: 8); best and worst form a pair."
    )
    num_inference_steps: int = Field(20, ge=1, description="Denoising steps per sample.")
    guidance_scale: float = Field(
        3.0, ge=1, description="Classifier-free guidance weight; 1 disables guidance."
    )
    num_actors: int = Field(1, ge=1, description="Generator actors in the Ray Data pool.")
    cpus_per_actor: float = Field(
        0.5,
        gt=0,
        description="CPUs each actor holds; fractional on small machines (whole CPUs can deadlock 2 cores).",
    )
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs each actor holds (0 on CPU machines).")
    prompts_per_batch: int = Field(
        4, ge=1, description="Prompts per actor call; each prompt's K samples are one batch."
    )
    height: int | None = Field(None, ge=8, description="Frame height (diffusers backends); null for world.")
    width: int | None = Field(None, ge=8, description="Frame width (diffusers backends); null for world.")
    num_frames: int | None = Field(
        None,
        ge=1,
        description="Frames per video (diffusers backends, e.g. 49 for CogVideoX); null for world.",
    )
    fps: float = Field(
        8.0, gt=0, description="Frame rate written into candidate mp4 files (diffusers backends)."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights and activations of the diffusers backends (bfloat16 on GPUs)."
    )
    device: str = Field("cpu", description="Torch device of each actor ('cuda' when gpus_per_actor > 0).")

    @model_validator(mode="after")
    def _check_geometry(self) -> Self:
        if self.backend != "world":
            missing = [name for name in ("height", "width", "num_frames") if getattr(self, name) is None]
            raise_problems([(name, f"is required by the {self.backend} backend") for name in missing])
        return self
