"""The `align` config section and the pieces of `align_generator` that need no cluster."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from ipo_ray.align.backends import builders, export_generator, latent_shape
from ipo_ray.align.table_rows import load_samples, row_seed
from ipo_ray.config import load_config
from ipo_ray.config.align import AlignConfig
from ipo_ray.data import columns as col
from ipo_ray.generator.files import save_latents, save_prompt_embeds
from ipo_ray.generator.world_model import DEFAULT_CHECKPOINT, load_world_model


def test_defaults_follow_the_papers() -> None:
    cfg = load_config(None, []).align
    assert (cfg.objective, cfg.resolved_beta, cfg.lambda_preferred, cfg.lambda_real) == (
        "dpo",
        5000.0,
        0.2,
        0.1,
    )
    assert (
        AlignConfig(objective="kto").resolved_beta == 1000.0
        and AlignConfig(objective="rwl").resolved_beta is None
    )
    assert cfg.cpus_per_worker == 0.5 and cfg.grad_accum == cfg.batch_size // (cfg.micro_batch * cfg.workers)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"batch_size": 6, "micro_batch": 2, "workers": 2},
            "batch_size: must be a multiple of micro_batch × workers = 4",
        ),
        ({"mixed_precision": "bf16"}, "mixed_precision: bf16 autocast needs use_gpu"),
        ({"zero_stage": 4}, "Input should be 0, 1, 2 or 3"),
        ({"beta": 0.0}, "greater than 0"),
        ({"lambda_real": -0.1}, "greater than or equal to 0"),
        ({"objective": "ppo"}, "'dpo', 'kto', 'rwl' or 'rs'"),
    ],
)
def test_bad_settings_name_the_field(changes, message) -> None:
    with pytest.raises(ValidationError, match=message):
        AlignConfig(**changes)


def test_samples_rows_give_each_objective_what_it_reads(tmp_path) -> None:
    save_prompt_embeds(tmp_path / "p.safetensors", torch.ones(4, 8), prompt="p", version="v")
    for i in range(2):
        save_latents(tmp_path / f"c{i}.safetensors", torch.full((3, 4, 4, 4), float(i)), version="v", seed=i)
    rows = {
        col.CANDIDATE_ID: np.array(["c0", "c1"]),
        col.LATENT_PATH: np.array([str(tmp_path / f"c{i}.safetensors") for i in range(2)]),
        col.PROMPT_EMBEDS_PATH: np.array([str(tmp_path / "p.safetensors")] * 2),
        col.REWARD: np.array([0.9, 0.05]),
        col.DESIRABLE: np.array([True, False]),
    }
    kto, rwl, rs = (load_samples(rows, o) for o in ("kto", "rwl", "rs"))
    assert kto.desirable.tolist() == [True, False] and kto.weights is None
    assert rwl.weights.tolist() == pytest.approx([0.9, 0.05]) and rwl.desirable is None
    assert rs.weights is None and rs.desirable is None and rs.latents.shape == (2, 3, 4, 4, 4)
    assert rs.ids == ("c0", "c1") and rs.text_embeds.shape == (2, 4, 8)
    # noise seeds are a function of (seed, epoch, row id) only
    assert row_seed(0, 1, "c0") == row_seed(0, 1, "c0") != row_seed(0, 2, "c0") != row_seed(0, 1, "c1")


def test_a_lora_world_policy_exports_merged_into_a_plain_world_checkpoint(tmp_path) -> None:
    build, make_denoiser = builders("world", DEFAULT_CHECKPOINT, lora_rank=4)
    policy = build()
    assert latent_shape("world", DEFAULT_CHECKPOINT) == (3, 4, 16, 16)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)  # as if trained: B starts at 0, which would make the merge a no-op
    x, t, text = torch.randn(2, 3, 4, 16, 16), torch.tensor([300.0, 700.0]), torch.randn(2, 32, 128)
    with torch.no_grad():
        expected = make_denoiser(policy).forward(policy, x, t, text)
    export_generator("world", policy, DEFAULT_CHECKPOINT, tmp_path / "v1", {"objective": "dpo"})
    exported, _, meta = load_world_model(tmp_path / "v1")
    assert meta["training"]["alignment"] == [{"objective": "dpo"}]
    assert not any("lora" in n for n, _ in exported.transformer.named_parameters())
    with torch.no_grad():
        got = exported.transformer(
            hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False
        )[0]
    torch.testing.assert_close(got, expected)  # aligned versions are stored in float32


@pytest.mark.parametrize("backend", ["cogvideox", "wan"])
def test_a_diffusers_policy_exports_a_pipeline_folder_the_generator_loads(tmp_path, backend) -> None:
    from ipo_ray.generator import CogVideoXGenerator, WanGenerator
    from ipo_ray.generator.tiny import TEXT_LEN, save_tiny_pipelines

    parent = save_tiny_pipelines(tmp_path)[backend]
    build, make_denoiser = builders(backend, parent, lora_rank=2)
    policy = build()
    make_denoiser(policy)  # the scheduler config gives the parametrisation
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
        state = {k: v.clone() for k, v in policy.state_dict().items()}
    out = export_generator(backend, policy, parent, tmp_path / "v1", {})
    assert (out / "transformer").is_dir() and not (out / "transformer").is_symlink()
    assert (out / "vae").is_symlink() and (out / "model_index.json").is_file()
    exported = builders(backend, out)[0]()
    # merged weights: base + B·A·(α/r), with the adapters' layers gone
    name = next(k for k in state if k.endswith("to_q.base_layer.weight"))
    prefix = name[: -len("base_layer.weight")]
    delta = state[prefix + "lora_B.default.weight"] @ state[prefix + "lora_A.default.weight"]
    torch.testing.assert_close(exported.state_dict()[prefix + "weight"], state[name] + delta)
    kwargs = {"version": "v1", "height": 16, "width": 16, "num_frames": 9, "num_inference_steps": 2}
    if backend == "wan":
        kwargs["max_sequence_length"] = TEXT_LEN
    generator = (CogVideoXGenerator if backend == "cogvideox" else WanGenerator)(out, **kwargs)
    assert np.isfinite(generator.decode(generator.denoise(generator.encode_prompt("A circle."), [1]))).all()


def test_a_table_is_read_from_a_file_or_a_folder_of_parts_with_a_digest(tmp_path) -> None:
    from ipo_ray.align.run import _read_training_table
    from ipo_ray.data import make_table, write_table

    def row(i: int) -> dict:
        return {
            col.CANDIDATE_ID: f"c{i}",
            col.PROMPT_ID: "p0",
            col.PROMPT: "p",
            col.LATENT_PATH: f"latents/c{i}.safetensors",
            col.PROMPT_EMBEDS_PATH: "prompt_embeds/p0.safetensors",
            col.REWARD: 0.5,
            col.DESIRABLE: True,
            col.PASSES: False,
            col.ROUND: 0,
        }

    one = write_table(make_table([row(0), row(1)], "samples"), tmp_path / "all.parquet", "samples")
    table, digest = _read_training_table(tmp_path / "all.parquet", "samples")
    assert table.num_rows == 2 and digest == one.sha256
    for i in range(2):
        write_table(make_table([row(i)], "samples"), tmp_path / "parts" / f"part-{i}.parquet", "samples")
    parts, parts_digest = _read_training_table(tmp_path / "parts", "samples")
    assert parts.num_rows == 2 and len(parts_digest) == 64 and parts_digest != digest


def test_gradient_checkpointing_reaches_the_train_loop_and_the_world_model_supports_it() -> None:
    from ipo_ray.align.models import enable_gradient_checkpointing
    from ipo_ray.align.run import _loop_config

    cfg = load_config(None, ["align.gradient_checkpointing=true"])
    assert _loop_config(cfg.align, "embeds", None, 0).gradient_checkpointing
    assert not _loop_config(load_config(None, []).align, "embeds", None, 0).gradient_checkpointing
    model = load_world_model(DEFAULT_CHECKPOINT)[0].transformer  # the policy alignment trains
    enable_gradient_checkpointing(model)
    assert model.is_gradient_checkpointing
