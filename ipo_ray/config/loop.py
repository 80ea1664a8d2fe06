"""Config section `loop`: Dual-IPO rounds (prompts, labelling mode, critic refresh, overlap, tracking)."""

from typing import Literal, Self

from pydantic import Field, model_validator

from ipo_ray.config.base import Section, raise_problems
from ipo_ray.config.evaluation import EvaluationConfig
from ipo_ray.config.prompts import PromptLlmConfig


class SrpoConfig(Section):
    """Dual-IPO's critic refresh: fine-tune the critic on its own confident labels, keep it if it holds up."""

    trigger: Literal["every_round", "on_disagreement", "never"] = Field(
        "every_round",
        description="Refresh each round, only when held-out disagreement passes the threshold, or never "
        "(a frozen critic).",
    )
    disagreement_threshold: float = Field(
        0.2,
        ge=0,
        le=1,
        description="on_disagreement: refresh when held-out accuracy is below 1 − this.",
    )
    steps: int = Field(60, ge=1, description="Fine-tuning steps per refresh.")
    lr: float = Field(2e-4, gt=0, description="AdamW learning rate of the refresh (from the current critic).")
    batch_size: int = Field(32, ge=1, description="Pseudo-labels per step, summed over workers.")
    lora: bool = Field(False, description="LoRA adapters (merged on save) instead of full fine-tuning.")
    save_adapter: bool = Field(
        False,
        description="With lora: each refreshed critic is a LoRA adapter of the default critic (the first "
        "refresh starts one, later ones continue it), served on the default's engine instead of an "
        "engine per version (needs serve.max_lora_rank >= critic.train.lora_rank).",
    )
    workers: int = Field(1, ge=1, description="Ray Train workers of the refresh.")
    cpus_per_worker: float = Field(
        0.5, gt=0, description="CPUs per refresh worker (beside the align workers)."
    )
    gpus_per_worker: float = Field(
        0.0,
        ge=0,
        description="GPUs per Ray Train worker; > 0 trains on GPUs over NCCL (each worker on the GPU Ray "
        "Train assigns it), 0 on CPUs over gloo.",
    )
    bf16: bool = Field(
        False, description="bf16 autocast of the forward passes (GPU workers; weights stay fp32)."
    )
    keep_tolerance: float = Field(
        0.02,
        ge=0,
        le=1,
        description="The refreshed critic replaces the current one unless held-out accuracy drops by more.",
    )
    heldout_clips: int = Field(
        96, ge=1, description="Held-out seed clips (pointwise) the critic is checked on."
    )
    heldout_pairs: int = Field(
        48, ge=0, description="Held-out seed pairs (pairwise) the critic is checked on."
    )
    heldout_seed: int = Field(
        1007, ge=0, description="Seed of the held-out seed set; differs from the critic's training set."
    )
    preference_loss: bool = Field(
        False,
        description="Add Dual-IPO's SRPO loss: DPO on the critic's own sampled answers, those reaching the "
        "voted verdict preferred over the rest, reference = the critic before the refresh (critic/srpo.py).",
    )
    beta: float = Field(0.1, gt=0, description="β of the SRPO loss (DPO's KL weight on answer log-probs).")
    preference_weight: float = Field(
        1.0, ge=0, description="Weight of the SRPO loss beside the SFT loss on the voted labels."
    )
    pairs_per_question: int = Field(
        4, ge=1, description="SRPO pairs (voted-verdict answer, dissenting answer) per question at most."
    )
    pairs_per_step: int = Field(
        16, ge=1, description="SRPO pairs per step, summed over workers (a multiple of workers)."
    )

    @model_validator(mode="after")
    def _check_pairs_split(self) -> Self:
        problems = []
        if self.preference_loss and self.pairs_per_step % self.workers:
            problems.append(
                (
                    "pairs_per_step",
                    f"must be a multiple of workers ({self.workers}), got {self.pairs_per_step}",
                )
            )
        if self.bf16 and not self.gpus_per_worker:
            problems.append(("bf16", "bf16 autocast needs GPU workers (gpus_per_worker > 0)"))
        raise_problems(problems)
        return self


class LoopConfig(Section):
    """How `jobs/dual_ipo.py` runs its rounds."""

    rounds: int = Field(3, ge=1, description="Rounds of generate → label → align → evaluate → refresh.")
    prompts_per_round: int = Field(32, ge=1, description="Fresh prompts sampled each round.")
    prompt_source: Literal["world", "file", "llm"] = Field(
        "world",
        description="Where each round's prompts come from: the world's grammar, a prompts table "
        "(prompts_file), or categories expanded by an instruct LLM on vLLM (prompt_llm; non-world "
        "generator backends).",
    )
    prompts_file: str | None = Field(
        None,
        description="prompt_source file: the prompts table (Parquet) each round's prompts are drawn from.",
    )
    prompt_llm: PromptLlmConfig = Field(
        default_factory=PromptLlmConfig, description="prompt_source llm: the expander's model and sampling."
    )
    label_mode: Literal["pointwise", "pairwise"] = Field(
        "pointwise",
        description="Critic questions: pointwise Good/Normal/Bad (rewards for every objective) or "
        "pairwise A/B/tie (round-robin among the K, DPO only).",
    )
    judge: Literal["critic", "oracle"] = Field(
        "critic",
        description="Who labels the round's candidates: the critic app, or (world backend, pointwise) the "
        "world's noise-free oracle in its place, one vote per question: the upper bound of what a critic "
        "can give alignment, which tells the critic's share of a result from the alignment's. The oracle "
        "refreshes no critic (needs loop.srpo.trigger: never).",
    )
    kto_desirable_reward: float = Field(
        0.55,
        ge=0.05,
        le=0.9,
        description="KTO label: desirable when the LiFT reward reaches this (0.55 puts Good, Good, "
        "Normal above and Good, Normal, Normal below).",
    )
    srpo: SrpoConfig = Field(default_factory=SrpoConfig, description="SRPO critic refresh.")
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig,
        description="Evaluation of each round's generator on cogvideox/wan (the world uses world.benchmark).",
    )
    overlap: bool = Field(True, description="Run the critic refresh at the same time as generator alignment.")
    critic_url: str | None = Field(
        None, description="A running critic app to query; null = the job starts its own Serve app."
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; null = $MLFLOW_TRACKING_URI, else sqlite under the run root.",
    )
    data_progress: bool = Field(
        False,
        description=(
            "Show Ray Data's progress bars and start-of-execution lines; off = the stage log "
            "and MLflow carry progress (Ray Data's own logs stay in the Ray session's logs/ray-data)."
        ),
    )
    experiment: str = Field("ipo-ray", min_length=1, description="MLflow experiment name.")
    video_grid_prompts: int = Field(
        4,
        ge=0,
        description="Prompts shown in each round's video grids: candidates.mp4 (the round's candidates) and "
        "eval_grid.mp4 (per evaluation prompt, the base generator's clip beside the round's, same seed; "
        "evaluate stages keep these clips); 0 draws neither.",
    )

    @model_validator(mode="after")
    def _check_prompt_source(self) -> Self:
        problems: list[tuple[str, str]] = []
        if self.prompt_source == "file" and self.prompts_file is None:
            problems.append(("prompts_file", "prompt_source file needs the path of a prompts table"))
        if self.prompt_source != "file" and self.prompts_file is not None:
            problems.append(
                (
                    "prompt_source",
                    f"is {self.prompt_source!r} but prompts_file is set; set prompt_source: file",
                )
            )
        if self.prompt_source == "llm" and self.prompt_llm.model is None:
            problems.append(("prompt_llm.model", "prompt_source llm needs an instruct-LLM checkpoint folder"))
        raise_problems(problems)
        return self
