"""Checking what clients send before anything reaches the model: paths, sizes, containers, frames.

Plain functions, testable without Ray or HTTP. Each refusal is an `InputError` carrying the HTTP
status the issue asks for: a path outside the allowed root 403, too large or too many frames 413,
not a video or corrupt 400. Messages name the video by what the client called it (its path or its
upload's file name), never by a server-side temporary file.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import decord
import numpy as np

from ipo_ray.data.video import VideoError, read_frames

_MIB = 1024 * 1024
_COPY_CHUNK = 1024 * 1024
# Leading bytes of the containers ffmpeg reads that we accept: ISO BMFF (mp4/mov/m4v: 'ftyp' at
# byte 4), Matroska/WebM (EBML magic) and AVI (RIFF....AVI ). Anything else is refused before it
# reaches a decoder: random bytes are "not a video", and there is no reason to hand them to ffmpeg.
_EBML = b"\x1a\x45\xdf\xa3"


class InputError(Exception):
    """A request the server refuses; `status` is the HTTP code, the message says what to fix.

    Args:
        status: 400, 401, 403, 404, 413, 415, 422 or 503.
        detail: Names the offending input and the problem; for 422, pydantic's list of field errors.
    """

    def __init__(self, status: int, detail: str | list[dict[str, object]]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class VideoLimits:
    """What a video may be (from `serve` config).

    Attributes:
        max_bytes: Largest file size.
        max_frames: Most frames in the file.
        max_frame_pixels: Largest width × height.
    """

    max_bytes: int
    max_frames: int
    max_frame_pixels: int

    @classmethod
    def from_mib(cls, max_upload_mb: float, max_frames: int, max_frame_pixels: int) -> "VideoLimits":
        """Limits with the size given in MiB, as in the config."""
        return cls(int(max_upload_mb * _MIB), max_frames, max_frame_pixels)


def resolve_video_path(root: Path | None, raw: str) -> Path:
    """The file a client named, if it lies under the allowed root; else a 403.

    Relative paths are taken from the root. The path is resolved (symlinks followed) and must stay
    under the resolved root: a symlink inside the root that points outside is refused. Any ``..``
    component is refused outright, even one that would land back inside the root.

    Args:
        root: The allowed root (`serve.allowed_root`); None refuses every path.
        raw: The path as the client sent it.

    Raises:
        InputError: 403 for a refused path, 400 for a path that cannot name a file.
    """
    if root is None:
        raise InputError(403, "video paths are disabled on this server (serve.allowed_root is null); upload")
    if "\x00" in raw:
        raise InputError(400, "video path contains a NUL byte")
    if ".." in Path(raw).parts:
        raise InputError(403, f"video path {raw!r} contains '..'; name a file under the allowed root")
    real_root = root.resolve()
    candidate = (real_root / raw).resolve()
    if not candidate.is_relative_to(real_root):
        raise InputError(403, f"video path {raw!r} resolves outside the allowed root")
    return candidate


def check_size(num_bytes: int, limits: VideoLimits, label: str) -> None:
    """413 when a video (or a whole request body) is larger than allowed."""
    if num_bytes > limits.max_bytes:
        raise InputError(
            413, f"{label}: {num_bytes / _MIB:.1f} MiB is over the limit of {limits.max_bytes / _MIB:.1f} MiB"
        )


def save_upload(source: BinaryIO, dest: Path, limits: VideoLimits, label: str) -> Path:
    """Copies an uploaded video to `dest`, refusing it (413) once it passes the size limit.

    Args:
        source: The upload's file object, read from its start.
        dest: File to write.
        limits: Size limit.
        label: The upload's name for messages.
    """
    written = 0
    with open(dest, "wb") as out:
        while chunk := source.read(_COPY_CHUNK):
            written += len(chunk)
            check_size(written, limits, label)
            out.write(chunk)
    return dest


def check_container(head: bytes, label: str) -> None:
    """400 unless the first bytes are those of an mp4/mov, Matroska/WebM or AVI file."""
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return
    if head[:4] == _EBML or (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return
    if not head:
        raise InputError(400, f"{label}: empty file, not a video")
    raise InputError(400, f"{label}: not a video (expected an mp4, mov, webm, mkv or avi container)")


def load_video(path: Path, label: str, limits: VideoLimits, num_frames: int) -> np.ndarray:
    """Checks a video file and returns `num_frames` uniformly sampled RGB frames.

    Order: exists, size (413), container bytes (400), frame count and frame size read from the
    container before decoding (413), then decoding (400 when corrupt or truncated).

    Args:
        path: The file on this server (resolved path or saved upload).
        label: What the client called it, for messages.
        limits: Size, frame count and frame area limits.
        num_frames: Frames to sample (IPO: 16).

    Returns:
        uint8 (num_frames, H, W, 3).

    Raises:
        InputError: 400 / 413 as above.
    """
    if not path.is_file():
        raise InputError(400, f"{label}: no such file" if not path.exists() else f"{label}: not a file")
    check_size(path.stat().st_size, limits, label)
    with open(path, "rb") as f:
        check_container(f.read(16), label)
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        total = len(reader)
        height, width = reader[0].shape[:2] if total else (0, 0)
        del reader
    except (RuntimeError, decord.DECORDError) as error:
        reason = _first_line(error).replace(str(path), label)
        raise InputError(400, f"{label}: not a readable video ({reason})") from None
    if total > limits.max_frames:
        raise InputError(413, f"{label}: {total} frames, more than the limit of {limits.max_frames}")
    if height * width > limits.max_frame_pixels:
        raise InputError(
            413, f"{label}: frames of {width}x{height} exceed the limit of {limits.max_frame_pixels} pixels"
        )
    try:
        return read_frames(path, num_frames)
    except VideoError as error:
        raise InputError(400, str(error).replace(str(path), label)) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Deletes a request's scratch folder (uploads), ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)
