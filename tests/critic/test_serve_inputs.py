"""The Serve app's plain functions: path checks, size/frame limits, video checks, response building."""

import io
import os
from pathlib import Path

import numpy as np
import pytest

from ipo_ray.critic.parse import parse_answer
from ipo_ray.critic.serve.bodies import check_token
from ipo_ray.critic.serve.inputs import (
    InputError,
    VideoLimits,
    check_container,
    load_video,
    resolve_video_path,
    save_upload,
)
from ipo_ray.critic.serve.responses import compare_response, score_response
from ipo_ray.critic.serve.versions import resolve_critic_path
from ipo_ray.data.video import write_mp4

LIMITS = VideoLimits(max_bytes=1 << 20, max_frames=64, max_frame_pixels=32 * 32)


def _clip(path: Path, frames: int = 8, side: int = 16) -> Path:
    video = np.zeros((frames, side, side, 3), dtype=np.uint8)
    video[:, 4:8, 4:8] = 200
    write_mp4(path, video, fps=8)
    return path


def _status(error: pytest.ExceptionInfo[InputError]) -> int:
    return error.value.status


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "sub").mkdir(parents=True)
    (tmp_path / "outside.mp4").write_bytes(b"x")
    return tmp_path / "root"


def test_paths_under_the_root_resolve(root: Path) -> None:
    assert resolve_video_path(root, "sub/a.mp4") == (root / "sub" / "a.mp4").resolve()
    assert resolve_video_path(root, str(root / "a.mp4")) == (root / "a.mp4").resolve()


@pytest.mark.parametrize("raw", ["../outside.mp4", "sub/../../outside.mp4", "sub/../a.mp4", "/etc/passwd"])
def test_paths_escaping_the_root_are_forbidden(root: Path, raw: str) -> None:
    with pytest.raises(InputError) as error:
        resolve_video_path(root, raw)
    assert _status(error) == 403


def test_symlink_out_of_the_root_is_forbidden_and_inside_is_fine(root: Path) -> None:
    os.symlink(root.parent / "outside.mp4", root / "escape.mp4")
    os.symlink(root / "sub", root / "alias")
    with pytest.raises(InputError, match="outside the allowed root") as error:
        resolve_video_path(root, "escape.mp4")
    assert _status(error) == 403
    assert resolve_video_path(root, "alias/a.mp4") == (root / "sub" / "a.mp4").resolve()


def test_paths_refused_without_a_root() -> None:
    with pytest.raises(InputError, match="allowed_root is null") as error:
        resolve_video_path(None, "a.mp4")
    assert _status(error) == 403


def test_upload_over_the_size_limit_is_413(tmp_path: Path) -> None:
    small = VideoLimits(max_bytes=10, max_frames=1, max_frame_pixels=1)
    with pytest.raises(InputError, match="over the limit") as error:
        save_upload(io.BytesIO(b"x" * 11), tmp_path / "v", small, "video (big.mp4)")
    assert _status(error) == 413
    assert save_upload(io.BytesIO(b"x" * 10), tmp_path / "w", small, "ok").read_bytes() == b"x" * 10


@pytest.mark.parametrize(
    ("head", "ok"),
    [
        (b"\x00\x00\x00\x18ftypisom", True),
        (b"\x1a\x45\xdf\xa3\x01\x00\x00\x00", True),
        (b"RIFF\x00\x00\x00\x00AVI LIST", True),
        (b"GIF89a....", False),
        (b"", False),
    ],
)
def test_container_sniffing(head: bytes, ok: bool) -> None:
    if ok:
        check_container(head, "v")
    else:
        with pytest.raises(InputError) as error:
            check_container(head, "v")
        assert _status(error) == 400


def test_load_video_samples_frames(tmp_path: Path) -> None:
    frames = load_video(_clip(tmp_path / "a.mp4"), "a.mp4", LIMITS, num_frames=16)
    assert frames.shape == (16, 16, 16, 3) and frames.dtype == np.uint8


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        (VideoLimits(max_bytes=100, max_frames=64, max_frame_pixels=1024), "over the limit"),
        (VideoLimits(max_bytes=1 << 20, max_frames=4, max_frame_pixels=1024), "8 frames, more than"),
        (VideoLimits(max_bytes=1 << 20, max_frames=64, max_frame_pixels=100), "16x16 exceed"),
    ],
)
def test_load_video_limits_are_413(tmp_path: Path, limits: VideoLimits, match: str) -> None:
    with pytest.raises(InputError, match=match) as error:
        load_video(_clip(tmp_path / "a.mp4"), "a.mp4", limits, num_frames=4)
    assert _status(error) == 413


def test_corrupt_and_fake_videos_are_400_named_by_label(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "a.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(clip[: len(clip) // 2])
    (tmp_path / "text.mp4").write_bytes(b"hello, not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name in ("cut.mp4", "text.mp4", "empty.mp4", "missing.mp4"):
        with pytest.raises(InputError, match=f"^upload {name}:") as error:
            load_video(tmp_path / name, f"upload {name}", LIMITS, num_frames=4)
        assert _status(error) == 400 and str(tmp_path) not in str(error.value)


def test_bearer_token() -> None:
    check_token(None, None)
    check_token("Bearer s3cret", "s3cret")
    for header in (None, "", "Bearer wrong", "Basic s3cret", "s3cret"):
        with pytest.raises(InputError) as error:
            check_token(header, "s3cret")
        assert _status(error) == 401


def test_score_response_votes_rewards_and_marks_unparseable() -> None:
    good = [parse_answer(t, "pointwise") for t in ("Good. Clear.", "Good. Sharp.", "gibberish", "Bad. Blur.")]
    answers = {
        "semantic_consistency": good,
        "motion_smoothness": [parse_answer("Normal. Some jitter.", "pointwise")] * 4,
        "faithfulness": [parse_answer("Bad. Blurry.", "pointwise")] * 4,
    }
    body = score_response("v1", answers)
    semantic = body.dimensions["semantic_consistency"]
    assert semantic.verdict == "Good" and semantic.votes == {"Good": 2, "Normal": 0, "Bad": 1}
    assert semantic.unparseable == 1 and semantic.certainty == 0.5 and semantic.reward == 0.9
    assert [a.parsed for a in semantic.answers] == [True, True, False, True]
    assert semantic.answers[2].verdict is None and semantic.answers[2].problem
    assert body.reward == pytest.approx((0.9 + 0.2 + 0.05) / 3) and body.samples == 4


def test_score_response_without_a_majority_has_no_reward() -> None:
    tied = [parse_answer(t, "pointwise") for t in ("Good.", "Bad.")]
    body = score_response("default", {d: tied for d in ("semantic_consistency", "faithfulness")})
    assert body.dimensions["faithfulness"].verdict is None and body.dimensions["faithfulness"].reward is None
    assert body.reward is None


def test_compare_response() -> None:
    answers = [parse_answer(t, "pairwise") for t in ("A. Sharper.", "A. Steadier.", "Tie. Same.", "maybe")]
    body = compare_response("default", {"faithfulness": answers})
    judged = body.dimensions["faithfulness"]
    assert judged.verdict == "A" and judged.votes == {"A": 2, "B": 0, "tie": 1}
    assert judged.certainty == 0.5 and judged.unparseable == 1


def test_missing_critic_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="has no config.json; set critic.path"):
        resolve_critic_path(str(tmp_path))
