"""Loading: YAML files, dotted overrides, error messages, dumping and the argparse helpers."""

import argparse
from pathlib import Path

import pytest
from pydantic import BaseModel

from ipo_ray.config import (
    Config,
    ConfigError,
    add_config_args,
    config_from_args,
    dump_yaml,
    load_config,
    parse_config,
    to_flat_dict,
)
from ipo_ray.config.__main__ import main
from ipo_ray.config.load import parse_yaml

DEFAULT_YAML = Path(__file__).parents[2] / "ipo_ray" / "config" / "default.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def _problems(path: Path | None = None, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


def test_defaults_load() -> None:
    assert load_config() == Config()


def test_default_yaml_is_the_model_defaults() -> None:
    assert load_config(DEFAULT_YAML) == Config()
    # Every key is spelled out and described; regenerate after a schema change.
    assert DEFAULT_YAML.read_text() == dump_yaml(Config()), (
        "default.yaml is stale: python -m ipo_ray.config > ipo_ray/config/default.yaml"
    )


def test_yaml_file_deep_merges_over_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "world:\n  render:\n    frames: 8\nrun:\n  name: smoke\n")
    cfg = load_config(path)
    assert cfg.world.render.frames == 8
    assert cfg.world.render.height == 16  # siblings keep their defaults
    assert cfg.world.web == Config().world.web
    assert cfg.run.name == "smoke"


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "# nothing\n")) == Config()


def test_overrides_apply_with_yaml_types(tmp_path: Path) -> None:
    path = _write(tmp_path, "world:\n  render:\n    frames: 8\nrun:\n  name: smoke\n")
    cfg = load_config(
        path,
        [
            "world.render.frames=12",  # override beats the file
            "world.web.defect_rate=5e-1",  # YAML 1.1 would read 5e-1 as a string
            "world.render.large_px=7",  # int accepted for a float field
            "run.name=null",
            "world.benchmark={num_prompts: 8}",  # a mapping merges into the section
            "run.root=/tmp/runs with spaces",
        ],
    )
    assert cfg.world.render.frames == 12
    assert cfg.world.web.defect_rate == 0.5
    assert cfg.world.render.large_px == 7.0 and isinstance(cfg.world.render.large_px, float)
    assert cfg.run.name is None
    assert (cfg.world.benchmark.num_prompts, cfg.world.benchmark.seed) == (8, 2024)
    assert cfg.run.root == "/tmp/runs with spaces"


def test_parse_yaml_values() -> None:
    assert parse_yaml("[1,2]") == [1, 2]
    assert parse_yaml("1e-4") == 1e-4
    assert parse_yaml("-3E2") == -300.0
    assert parse_yaml("12") == 12
    assert parse_yaml("'12'") == "12"
    assert parse_yaml("") is None


def test_unknown_key_in_file_names_path_and_suggestion(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, "world:\n  render:\n    frams: 8\n"))
    assert len(problems) == 1
    assert problems[0].startswith(
        "world.render.frams: unknown key (did you mean 'frames'? valid keys: frames, "
    )
    assert problems[0].endswith(f"(from {tmp_path / 'cfg.yaml'})")


def test_unknown_key_in_override_names_path_and_suggestion() -> None:
    assert _problems(overrides=("world.rendr.frames=8",)) == [
        "world.rendr: unknown key (did you mean 'render'? "
        "valid keys: render, web, annotators, seed_set, benchmark) (from override world.rendr.frames=8)"
    ]


def test_override_below_a_value_is_refused() -> None:
    (problem,) = _problems(overrides=("video.num_frames.x=1",))
    assert problem.startswith("video.num_frames.x: unknown key (video.num_frames is a value, not a section")


def test_malformed_override_is_refused() -> None:
    assert _problems(overrides=("frames",)) == [
        "override 'frames': expected KEY=VALUE, e.g. world.render.frames=8"
    ]


def test_wrong_type_names_path_and_source(tmp_path: Path) -> None:
    assert _problems(overrides=("world.render.frames=abc",)) == [
        "world.render.frames: expected an integer, got 'abc' (from override world.render.frames=abc)"
    ]
    (problem,) = _problems(_write(tmp_path, "video: 3\n"))
    assert problem.startswith("video: expected a section (a mapping with keys num_frames)")
    (problem,) = _problems(overrides=("run.name=2024",))
    assert problem.startswith("run.name: expected a string, got 2024; quote it")


def test_range_errors_say_the_range() -> None:
    assert _problems(
        overrides=("world.web.defect_rate=1.5", "world.web.seed=-1", "world.render.frames=1")
    ) == [
        "world.render.frames: must be at least 2, got 1 (from override world.render.frames=1)",
        "world.web.defect_rate: must be between 0 and 1, got 1.5 (from override world.web.defect_rate=1.5)",
        "world.web.seed: must be at least 0, got -1 (from override world.web.seed=-1)",
    ]


def test_cross_field_errors_name_the_field() -> None:
    problems = _problems(
        overrides=("world.render.small_px=7.5", "world.web.min_strength=0.9", "world.web.max_strength=0.5")
    )
    assert problems == [
        "world.render.small_px: must be smaller than large_px (6.5), got 7.5 "
        "(from override world.render.small_px=7.5)",
        "world.web.min_strength: must be at most max_strength (0.5), got 0.9 "
        "(from override world.web.min_strength=0.9)",
    ]


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    path = _write(tmp_path, "world:\n  render:\n    rendr: 3\n  web:\n    defect_rate: 1.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["world.render.frames=abc", "sed=1"])
    message = str(info.value)
    assert message.startswith("invalid config (4 problems):\n")
    for fragment in (
        "sed: unknown key (did you mean 'seed'?",
        "world.render.frames: expected an integer, got 'abc'",
        "world.render.rendr: unknown key",
        "world.web.defect_rate: must be between 0 and 1, got 1.5",
    ):
        assert fragment in message


def test_missing_and_unreadable_files_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert _problems(missing) == [f"{missing}: config file not found (check the path given to --config)"]
    (problem,) = _problems(tmp_path)  # a directory
    assert problem.startswith(f"{tmp_path}: cannot read config file")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("world: [1\n", "invalid YAML: expected ',' or ']'"),
        ("seed: 1\nseed: 2\n", "invalid YAML: found duplicate key 'seed' at line 2, column 1"),
        ("- 1\n", "the top level must be a mapping of keys (world, video, run, generator, "),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    (problem,) = _problems(_write(tmp_path, text))
    assert problem.startswith(f"{tmp_path / 'cfg.yaml'}: {expected}")


def test_dump_load_round_trip(tmp_path: Path) -> None:
    cfg = load_config(
        overrides=[
            "world.render.frames=9",
            "world.annotators.pair_score_noise=1e-10",
            "run.name='007'",  # looks like a number: must stay a string
            "run.root=null dir",
            "run.root='yes'",  # YAML 1.1 would read a bare yes as true
            "seed=42",
        ]
    )
    path = _write(tmp_path, dump_yaml(cfg))
    assert load_config(path) == cfg


def _count_leaves(model: type[BaseModel]) -> int:
    count = 0
    for field in model.model_fields.values():
        annotation = field.annotation
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        count += _count_leaves(annotation) if is_section else 1
    return count


def test_to_flat_dict() -> None:
    flat = to_flat_dict(load_config(overrides=["run.name=x"]))
    assert flat["world.render.frames"] == 4
    assert flat["world.web.defect_rate"] == 0.3
    assert flat["run.name"] == "x"
    assert flat["seed"] == 0
    # Every leaf of the model tree appears once (sections counted by walking the models).
    assert len(flat) == _count_leaves(Config)
    assert all(not isinstance(value, (dict, list)) for value in flat.values())


def test_argparse_helpers(tmp_path: Path) -> None:
    path = _write(tmp_path, "world:\n  render:\n    frames: 6\n")
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true")
    add_config_args(parser)
    args = parser.parse_args(["--config", str(path), "--dry-run", "world.render.height=32", "run.name=a"])
    cfg = config_from_args(args)
    assert (cfg.world.render.frames, cfg.world.render.height, cfg.run.name) == (6, 32, "a")
    assert config_from_args(parser.parse_args([])) == Config()


def test_main_prints_config_or_problems(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["ipo_ray.config", "seed=3"])
    main()
    assert "\nseed: 3\n" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["ipo_ray.config", "seed=x"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert "seed: expected an integer, got 'x'" in capsys.readouterr().err


def test_parse_config_exits_2_with_the_problems(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="job")
    add_config_args(parser)
    with pytest.raises(SystemExit) as info:
        parse_config(parser, ["world.render.frames=abc"])
    assert info.value.code == 2
    assert "world.render.frames: expected an integer, got 'abc'" in capsys.readouterr().err
    args, cfg = parse_config(parser, ["seed=3"])
    assert cfg.seed == 3 and args.overrides == ["seed=3"]
