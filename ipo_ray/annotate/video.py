"""Browser copies of videos: scaled up with nearest neighbour and encoded as H.264 4:2:0.

The world writes 16×16 clips as H.264 High 4:4:4 (lossless, `ipo_ray.data.video`). Debian's
Chromium 150 decodes those (measured: readyState 4, 16×16), but a 16-pixel video scaled up by the
browser is a blur, and 4:4:4 H.264 is not universally playable (Firefox and Safari use platform
decoders that refuse it). The copy is each pixel repeated to at least `min_side` pixels per side, in
yuv420p — the one H.264 form every browser plays — at near-lossless quality. Copies are cached by the
source's path, size and modification time, and written atomically, so concurrent requests for one
video at worst encode it twice.
"""

import hashlib
import math
import os
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ipo_ray.data.video import VideoError

_CRF = "12"  # visually lossless on flat synthetic colours; the clips stay a few kB


def browser_copy(source: str | Path, cache_dir: str | Path, min_side: int) -> Path:
    """The browser copy of `source`, made on first use.

    Args:
        source: An mp4 (any container ffmpeg reads).
        cache_dir: Folder of the copies.
        min_side: Smallest side of the copy in pixels (the scale is a whole number).

    Raises:
        VideoError: `source` is missing, not a video, or has no frames.
    """
    source = Path(source)
    try:
        stat = source.stat()
    except OSError as error:
        raise VideoError(f"{source}: {error.strerror}") from None
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{min_side}".encode())
    target = Path(cache_dir) / f"{key.hexdigest()[:32]}.mp4"
    if target.is_file():
        return target
    frames, rate = _decode(source)
    _, height, width, _ = frames.shape
    scale = max(1, math.ceil(min_side / min(height, width)))
    big = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    # 4:2:0 needs even sides; a repeated odd side is cut by one row/column of a repeated pixel.
    big = big[:, : big.shape[1] // 2 * 2, : big.shape[2] // 2 * 2]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    try:
        _encode(tmp, big, rate)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _decode(source: Path) -> tuple[np.ndarray, Fraction]:
    try:
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            rate = Fraction(stream.average_rate or 8)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.FFmpegError, IndexError, UnicodeDecodeError) as error:
        raise VideoError(f"{source}: not a readable video ({error})") from None
    if not frames:
        raise VideoError(f"{source}: the video has no frames")
    return np.stack(frames), rate


def _encode(path: Path, frames: np.ndarray, rate: Fraction) -> None:
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": _CRF}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
