"""Config section `critic.train`: supervised fine-tuning of the critic on a labels table (IPO Eq. 1)."""

from typing import Literal, Self

from pydantic import Field, model_validator

from ipo_ray.config.base import Section, Seed, raise_problems


class CriticTrainConfig(Section):
    """Critic SFT: answer-only loss, LoRA or full, Ray Train workers."""

    labels: str | None = Field(
        None,
        description="Labels table (Parquet) to train on; null = build the world seed set (world.seed_set).",
    )
    init: str | None = Field(
        None,
        description="Critic folder to start from; null = a new random critic built from the training texts.",
    )
    deepen_layers: int = Field(
        0,
        ge=0,
        description="With init: add this many language-model layers that start as the identity "
        "(critic/model.py: deepen_critic) before training; 0 = train init as it is.",
    )
    describe_first: bool = Field(
        False,
        description="With init: train every question with the init critic's own description of its "
        "video(s) as chain-of-thought before the verdict (critic/augment.py); serve the result with "
        "critic.chain_of_thought: true.",
    )
    judge_first: bool | None = Field(
        None,
        description="With init: train every pairwise question with the init critic's own pointwise "
        "verdicts on both videos as chain-of-thought before the preference ('Video A: Good. Video B: "
        "Bad.', critic/judge_first.py); pointwise questions stay direct. The checkpoint records it "
        "(tokenizer config critic_pairwise_read), and POST /v1/compare, jobs/eval_critic.py and the "
        "loop's critic refresh read its pairs so. null = as the init critic reads (direct without init).",
    )
    out: str | None = Field(
        None, description="Checkpoint folder to write; null = <run.root>/<run.name or 'critic'>/critic."
    )
    vocab_size: int = Field(
        2048,
        ge=263,
        description="BPE vocabulary of a critic built from scratch (not with init); larger = fewer tokens.",
    )
    patch_size: int = Field(
        2, ge=1, description="Vision patch side in pixels of a critic built from scratch (not with init)."
    )
    temporal_patch_size: int = Field(
        16,
        ge=1,
        description=(
            "Frames fused into one vision patch of a critic built from scratch. The vision tower "
            "attends within a temporal group only, so 16 (= video.num_frames) lets it see motion; "
            "Qwen2-VL's own 2 leaves every comparison across time to the language model."
        ),
    )
    vision_embed: int = Field(
        128, ge=32, description="Vision tower width of a critic built from scratch (heads of 32)."
    )
    text_hidden: int = Field(
        128,
        ge=64,
        description="Language model width of a critic built from scratch: a multiple of 64 (heads of 32, "
        "half as many key/value heads).",
    )
    caption_first: bool | None = Field(
        None,
        description=(
            "Prompt layout of the trained critic: true = the caption before the videos, so the video "
            "tokens can attend to it (critic/templates.messages); false = videos first (Qwen2-VL's "
            "usual order); null = the init critic's layout (videos first from scratch). Kept in the "
            "critic's tokenizer config, so every backend renders prompts the same way."
        ),
    )
    text_layers: int = Field(2, ge=1, description="Language model depth of a critic built from scratch.")
    text_intermediate: int = Field(
        256, ge=1, description="Language model MLP width of a critic built from scratch."
    )
    vision_warmup_steps: int = Field(
        2000,
        ge=0,
        description=(
            "Steps of stage 1 for a critic built from scratch: the vision tower alone, with linear "
            "verdict probes on the pointwise and pairwise labels (critic/probe.py); 0 = none. "
            "Without it the world critic's verdicts never left the class prior."
        ),
    )
    probe_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of the verdict probe's loss beside the answer loss (training only; 0 = none).",
    )
    srpo_pairs: str | None = Field(
        None,
        description=(
            "SRPO pairs file (a round's refresh/srpo_pairs.json, critic/srpo.write_pairs) whose "
            "preference loss is added to SFT, with loop.srpo's beta, preference_weight and "
            "pairs_per_step (Dual-IPO's SRPO loss, offline); null = SFT only."
        ),
    )
    version: str = Field("v1", min_length=1, description="Version name written in the checkpoint manifest.")
    with_reasons: bool = Field(
        True,
        description="Train on 'Verdict. reason' answers; false = verdict only (LiFT Table 2's ablation).",
    )
    verdict_weight: float = Field(
        1.0,
        ge=0,
        description="Loss weight of the verdict token; 1 = IPO Eq. 1's token mean (see sft.answer_weights).",
    )
    describe_share: float = Field(
        0.25,
        ge=0,
        lt=1,
        description=(
            "Share of each batch spent on 'describe the video' (answer: its caption) over the training "
            "videos; without it a critic trained from scratch ignores the video (see critic/sft.py). "
            "The SRPO refresh, which starts from a trained critic, does not use it."
        ),
    )
    contrast_pairs: int = Field(
        0,
        ge=0,
        description=(
            "Caption-contrast pairs to add to training (critic/contrast.py): two training clips the "
            "annotators found semantically Good whose prompts differ in one colour, shape or action, "
            "asked which matches one clip's caption; the answer holds by construction. Needs the "
            "prompts table with specs beside the labels (world seed sets have one); 0 = none."
        ),
    )
    contrast_kind: Literal["pointwise", "pairwise", "both"] = Field(
        "pointwise",
        description=(
            "The contrast questions: pointwise = one clip asked with its neighbour's caption, answered "
            "Bad (the clip's own Good row stays, so only comparing video with caption fits both); "
            "pairwise = both clips asked with one clip's caption, that clip preferred, plus a tie of the "
            "same make (both asked with a third caption, or a clip beside itself); both = the two."
        ),
    )
    attribute_warmup_steps: int = Field(
        0,
        ge=0,
        description=(
            "Steps of a vision warm-up that also predicts what each clip shows: the colour, shape and "
            "action its caption names, for clips the annotators found semantically Good "
            "(critic/attributes.py), beside the verdict probes; on the init critic (into "
            "<run>/attribute-warm), or a new one after its verdict warm-up. The verdict probes alone "
            "never teach shape. Needs the prompts table with specs beside the labels; 0 = none."
        ),
    )
    contrast_warmup_steps: int = Field(
        0,
        ge=0,
        description=(
            "Steps of the contrast warm-up before SFT: training on the contrast_pairs and their clips' "
            "own semantic rows only, on the same runner, lr and batch as SFT. Mixed into all labels the "
            "contrasts are too few to be learned; alone they teach the critic to compare the video with "
            "the caption's words (world critic README). Needs contrast_pairs > 0; 0 = no warm-up."
        ),
    )
    mirror_pairs: bool = Field(
        False,
        description="Also train each pairwise label with videos A and B swapped (and A/B in its verdict and "
        "reason), so the critic cannot learn a preference for a position (critic/sft.py: mirrored).",
    )
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (1e-3 suits a tiny critic from scratch).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(32, ge=1, description="Examples per optimiser step, summed over workers.")
    steps: int = Field(2000, ge=1, description="Optimiser steps at most; training stops at steps or minutes.")
    minutes: float | None = Field(
        None, gt=0, description="Wall-clock budget in minutes; null = run all steps."
    )
    warmup_steps: int = Field(50, ge=0, description="Linear learning-rate warm-up steps.")
    lora: bool = Field(
        False, description="Train LoRA adapters (merged into the saved weights) instead of all."
    )
    save_adapter: bool = Field(
        False,
        description="With lora: save the LoRA adapter alone (its base: init) instead of merged weights, a "
        "version the critic app serves on its default critic's engine (needs serve.max_lora_rank).",
    )
    lora_rank: int = Field(8, ge=1, description="LoRA rank when lora is true.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / rank).")
    held_out: float = Field(
        0.1, ge=0, lt=1, description="Share of videos/pairs kept out of training for evaluation."
    )
    eval_every: int = Field(
        500, ge=1, description="Steps between held-out evaluations (first-token verdicts) in the log."
    )
    eval_max: int = Field(
        600, ge=1, description="Held-out label rows scored at most by the in-training evaluation."
    )
    max_new_tokens: int = Field(
        8, ge=1, description="Greedy answer length in the final evaluation; the verdict comes first."
    )
    runner: Literal["ray", "local"] = Field(
        "ray", description="ray = Ray Train TorchTrainer (gloo); local = this process, one worker."
    )
    workers: int = Field(2, ge=1, description="Ray Train workers; gradients all-reduced over gloo or NCCL.")
    cpus_per_worker: float = Field(
        0.5, gt=0, description="CPUs per Ray Train worker; fractional so 2 cores never deadlock."
    )
    threads: int = Field(1, ge=1, description="torch threads per worker.")
    gpus_per_worker: float = Field(
        0.0,
        ge=0,
        description="GPUs per Ray Train worker; > 0 trains on GPUs over NCCL (each worker on the GPU Ray "
        "Train assigns it), 0 on CPUs over gloo.",
    )
    bf16: bool = Field(
        False, description="bf16 autocast of the forward passes (GPU workers; weights stay fp32)."
    )
    seed: Seed = Field(0, description="Seeds the split, the initial weights and the data order.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = []
        if self.runner == "local" and self.workers != 1:
            problems.append(
                ("workers", f"the local runner has one worker, got {self.workers}; use runner=ray")
            )
        if self.vision_embed % 32:
            problems.append(
                ("vision_embed", f"must be a multiple of 32 (heads of 32), got {self.vision_embed}")
            )
        if self.text_hidden % 64:
            problems.append(
                ("text_hidden", f"must be a multiple of 64 (heads of 32), got {self.text_hidden}")
            )
        if self.batch_size % self.workers:
            problems.append(
                ("batch_size", f"must be a multiple of workers ({self.workers}), got {self.batch_size}")
            )
        if self.bf16 and not self.gpus_per_worker:
            problems.append(("bf16", "bf16 autocast needs GPU workers (gpus_per_worker > 0)"))
        if self.runner == "local" and self.gpus_per_worker:
            problems.append(("gpus_per_worker", "GPU workers need runner=ray"))
        if self.deepen_layers and not self.init:
            problems.append(("deepen_layers", "deepens the init critic; set init (a critic folder)"))
        if self.describe_first and not self.init:
            problems.append(("describe_first", "the descriptions come from the init critic; set init"))
        if self.judge_first and not self.init:
            problems.append(("judge_first", "the verdicts come from the init critic; set init"))
        if self.judge_first and self.describe_first:
            problems.append(("judge_first", "pairwise thinking is one kind; set describe_first: false"))
        if self.judge_first and self.save_adapter:
            problems.append(("judge_first", "an adapter reads as its base critic does; save_adapter: false"))
        if self.deepen_layers and self.lora:
            problems.append(("deepen_layers", "new layers must train in full; set lora: false"))
        if self.save_adapter and not (self.lora and self.init):
            problems.append(("save_adapter", "an adapter needs lora: true and init (its base critic folder)"))
        if self.contrast_warmup_steps and not self.contrast_pairs:
            problems.append(("contrast_warmup_steps", "trains on contrasts; set contrast_pairs > 0"))
        raise_problems(problems)
        return self
