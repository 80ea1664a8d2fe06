"""VBench's temporal flickering on synthetic clips: static is the maximum, more flicker scores lower."""

import numpy as np
import pytest

from ipo_ray.loop.flicker import temporal_flickering


def _clip(amplitude: int, frames: int = 8) -> np.ndarray:
    """A mid-grey (frames, 16, 16, 3) clip whose brightness alternates by ±amplitude/2 every frame."""
    base = np.random.default_rng(0).integers(60, 196, (16, 16, 3))
    signs = np.array([1 if t % 2 else -1 for t in range(frames)])[:, None, None, None]
    return (base[None] + signs * amplitude // 2).astype(np.uint8)


def test_a_static_clip_scores_the_maximum() -> None:
    assert temporal_flickering(_clip(0)) == 1.0


def test_the_score_is_vbench_formula() -> None:
    # Every consecutive pair differs by exactly 10 at every pixel: (255 - 10) / 255.
    assert temporal_flickering(_clip(10)) == pytest.approx(245 / 255)


def test_flicker_lowers_the_score_monotonically_in_amplitude() -> None:
    scores = [temporal_flickering(_clip(a)) for a in (0, 4, 16, 64, 120)]
    assert all(later < earlier for earlier, later in zip(scores, scores[1:], strict=False))
    assert 0.0 <= scores[-1] < 1.0


def test_uint8_differences_do_not_wrap() -> None:
    clip = np.zeros((2, 4, 4, 3), np.uint8)
    clip[1] = 255  # a uint8 subtraction would wrap 0 - 255 to 1
    assert temporal_flickering(clip) == 0.0


@pytest.mark.parametrize(
    "frames",
    [np.zeros((1, 4, 4, 3), np.uint8), np.zeros((3, 4, 4), np.uint8), np.zeros((3, 4, 4, 3), np.float32)],
)
def test_bad_input_is_refused(frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frames|at least 2"):
        temporal_flickering(frames)
