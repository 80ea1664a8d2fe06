"""What every config section is built from: the strict `Section` base, shared field types, and the
cross-field error that names the field to fix.

Section models live in `schema.py` (the world, video, run) and in one file per component
(`critic.py`, `serve.py`, `align.py`, `generator.py`, `loop.py`); `schema.Config` mounts them all.
"""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class CrossFieldError(ValueError):
    """Problems found by comparing fields of one section, each tied to the field to change.

    Args:
        problems: (field name, message) pairs; the message says what the value must satisfy.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))
        self.problems = problems


def raise_problems(problems: list[tuple[str, str]]) -> None:
    """Raise `CrossFieldError` if any cross-field problem was found."""
    if problems:
        raise CrossFieldError(problems)


def _must_be_even(value: int) -> int:
    # libx264 refuses odd sizes in yuv420p (half-resolution chroma), the pixel format most players
    # need; requiring even sizes keeps every pix_fmt valid and fails here rather than inside ffmpeg.
    if value % 2:
        raise ValueError(
            f"must be even (H.264 needs even frame sizes), got {value}; use {value - 1} or {value + 1}"
        )
    return value


FrameSide = Annotated[int, Field(ge=8), AfterValidator(_must_be_even)]
Seed = Annotated[int, Field(ge=0)]  # numpy's Generator refuses negative seeds.


class Section(BaseModel):
    """Base of every config section: immutable, strictly typed, unknown keys refused.

    Strict typing means YAML `"8"` (a string) is not silently read as the integer 8; integers are
    still accepted where a float is expected.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
