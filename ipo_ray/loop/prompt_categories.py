"""Category words and their seeded combinations: what an instruct LLM expands into prompts.

LiFT §3.1: "we randomly choose 1–2 subjects ..., a scene from the scenes list, and an action ...
These selected elements are combined into a phrase and refined into a detailed textual description
using LLM". IPO §3.1 does the same with its own categories. A categories file (YAML or JSON) holds four
non-empty lists of strings: ``subjects``, ``actions``, ``scenes``, ``styles``; the shipped one is
``ipo_ray/assets/prompt_categories.yaml``.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import yaml

DEFAULT_CATEGORIES: Final = Path(__file__).resolve().parents[1] / "assets" / "prompt_categories.yaml"
KEYS: Final = ("subjects", "actions", "scenes", "styles")


@dataclass(frozen=True)
class Categories:
    """The four word lists combinations are drawn from."""

    subjects: tuple[str, ...]
    actions: tuple[str, ...]
    scenes: tuple[str, ...]
    styles: tuple[str, ...]


@dataclass(frozen=True)
class Combination:
    """One draw: 1..max_subjects distinct subjects, an action, a scene, a style."""

    subjects: tuple[str, ...]
    action: str
    scene: str
    style: str

    def as_dict(self) -> dict[str, object]:
        return {
            "subjects": list(self.subjects),
            "action": self.action,
            "scene": self.scene,
            "style": self.style,
        }


def load_categories(path: str | Path | None = None) -> Categories:
    """Reads a categories file (YAML or JSON; YAML parses both).

    Args:
        path: The file; None = the shipped default.

    Raises:
        ValueError: A key is missing, extra, or not a non-empty list of non-empty strings.
    """
    path = Path(path) if path is not None else DEFAULT_CATEGORIES
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with keys {', '.join(KEYS)}")
    problems = [f"unknown key {key!r}" for key in data if key not in KEYS]
    for key in KEYS:
        words = data.get(key)
        if (
            not isinstance(words, list)
            or not words
            or not all(isinstance(w, str) and w.strip() for w in words)
        ):
            problems.append(f"{key} must be a non-empty list of non-empty strings")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return Categories(*(tuple(w.strip() for w in data[key]) for key in KEYS))


def combine(
    categories: Categories, count: int, rng: np.random.Generator, max_subjects: int
) -> list[Combination]:
    """`count` independent draws; the same generator state gives the same draws.

    Raises:
        ValueError: max_subjects exceeds the number of subjects (subjects in a draw are distinct).
    """
    if max_subjects > len(categories.subjects):
        raise ValueError(
            f"max_subjects {max_subjects} exceeds the {len(categories.subjects)} subjects listed"
        )
    draws = []
    for _ in range(count):
        num_subjects = int(rng.integers(1, max_subjects + 1))
        subjects = rng.choice(len(categories.subjects), size=num_subjects, replace=False)
        draws.append(
            Combination(
                subjects=tuple(categories.subjects[i] for i in subjects),
                action=categories.actions[rng.integers(len(categories.actions))],
                scene=categories.scenes[rng.integers(len(categories.scenes))],
                style=categories.styles[rng.integers(len(categories.styles))],
            )
        )
    return draws


def instruction(combination: Combination) -> str:
    """The user turn asking the LLM for one description of a combination."""
    subjects = " and ".join(combination.subjects)
    return (
        f"Write one vivid, concrete video description of {subjects} {combination.action} in "
        f"{combination.scene}; style: {combination.style}. Describe what is seen and how it moves, "
        "in one sentence of at most 60 words. Reply with the sentence only."
    )
