"""Write a config out: flat dotted parameters (for MLflow) and commented YAML (for run directories).

`dump_yaml` output loads back to an equal config with `load_config`, and `default.yaml` is exactly
`dump_yaml(Config())`, so field descriptions are the only documentation to keep up to date.
"""

import textwrap
from typing import Any

import yaml
from pydantic import BaseModel

Scalar = str | int | float | bool | None

_COMMENT_WIDTH = 100


def to_flat_dict(config: BaseModel) -> dict[str, Scalar]:
    """Flatten a config into dotted keys, e.g. {"world.render.frames": 4, "run.name": None}.

    Args:
        config: the config tree, or any section of it.

    Returns:
        One entry per leaf field, in declaration order. A list or mapping value is given as its YAML
        flow text ("[1, 2]", "{}"), since parameter stores such as MLflow take scalars.
    """
    flat: dict[str, Scalar] = {}

    def walk(model: BaseModel, data: dict[str, Any], prefix: str) -> None:
        for key in type(model).model_fields:
            value = getattr(model, key)
            if isinstance(value, BaseModel):
                walk(value, data[key], f"{prefix}{key}.")
            elif isinstance(data[key], (list, dict)):
                flat[f"{prefix}{key}"] = _yaml_value(data[key])
            else:
                flat[f"{prefix}{key}"] = data[key]

    walk(config, config.model_dump(mode="json"), "")
    return flat


def dump_yaml(config: BaseModel) -> str:
    """Write a config as YAML, each key preceded by its description as a comment.

    Args:
        config: the config tree (or a section of it, for display).

    Returns:
        YAML text that `load_config` reads back to an equal config.
    """
    lines = ["# ipo-ray config: written by ipo_ray.config.dump_yaml, read by ipo_ray.config.load_config."]
    _emit(config, config.model_dump(mode="json"), 0, lines)
    return "\n".join(lines) + "\n"


def _emit(model: BaseModel, data: dict[str, Any], indent: int, lines: list[str]) -> None:
    """Append the YAML lines of one section, recursing into sub-sections."""
    pad = " " * indent
    after_section = False
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        is_section = isinstance(value, BaseModel)
        if (is_section or after_section) and not lines[-1].endswith(":"):
            lines.append("")  # blank lines around sections keep the file scannable
        after_section = is_section
        for line in textwrap.wrap(field.description or "", width=_COMMENT_WIDTH - indent - 2):
            lines.append(f"{pad}# {line}")
        if is_section and not type(value).model_fields:
            lines.append(f"{pad}{name}: {{}}")  # a section with no fields yet: YAML's empty mapping
        elif is_section:
            lines.append(f"{pad}{name}:")
            _emit(value, data[name], indent + 2, lines)
        else:
            lines.append(f"{pad}{name}: {_yaml_value(data[name])}")


def _yaml_value(value: Any) -> str:
    """One value in YAML flow style, quoted where YAML would otherwise read it as another type."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("...\n").strip()
