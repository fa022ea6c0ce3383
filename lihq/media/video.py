"""Video frames out of any file ffmpeg reads: `decode_video` (one array) and `iter_video` (chunks).

Timeline rule (both functions): frame i is the picture on screen at time `t = start + i/fps` of the
source, i.e. the last source frame whose timestamp is <= t (sample and hold; times are relative to
the file's start). A 25 fps source read at 25 fps from a frame-aligned `start` thus gives its frames
unchanged. (Done with ffmpeg's `fps` filter, `round=up` and `start_time`, after an accurate seek to
a point safely before `start`.) With `duration` given, N = round(duration * fps) (half rounds up, at least 1), and
the range is rejected when `start + duration` exceeds the video's duration by more than half an
output frame (so every sample time lies inside the video); the output is exactly N frames (capped
by `max_frames`). Without `duration`, frames run to the end (about (duration - start) * fps).
Rotation metadata is honoured (ffmpeg's autorotate), so frames come out as the video displays.
Frames are uint8 RGB, shape (N, H, W, 3); `size=(width, height)` is a plain resize (no crop).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from lihq.errors import InvalidInput
from lihq.media._ff import FfmpegProcess, ff_url, ffmpeg_argv, rational, read_exact, short_reason
from lihq.media.image import load_image
from lihq.media.probe import MediaInfo, probe

_SLACK_S = 1e-3  # container durations are rounded; forgive a millisecond


@dataclass(frozen=True)
class _Plan:
    path: Path
    start: float
    fps: float
    width: int
    height: int
    n: int | None  # frames to produce; None = to the end of the video
    src_pixels: int = 0  # width * height of the source, to pick the resize filter
    src_fps: float = 0.0

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3


def frame_count(duration: float, fps: float) -> int:
    """N = round(duration * fps), half up, at least 1: the frames covering [start, start + duration)."""
    return max(1, int(math.floor(duration * fps + 0.5)))


def _check_args(start: float, duration: float | None, fps: float, size: tuple[int, int] | None) -> None:
    if not (fps > 0 and math.isfinite(fps)):
        raise InvalidInput(f"fps must be > 0, got {fps}")
    if not (start >= 0 and math.isfinite(start)):
        raise InvalidInput(f"start must be >= 0 s, got {start}")
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise InvalidInput(f"duration must be > 0 s, got {duration}")
    if size is not None and (len(size) != 2 or min(int(size[0]), int(size[1])) <= 0):
        raise InvalidInput(f"size must be (width, height) with both > 0, got {size!r}")


def _plan(
    info: MediaInfo, start: float, duration: float | None, fps: float, size: tuple[int, int] | None
) -> _Plan:
    w, h = (int(size[0]), int(size[1])) if size is not None else (info.width, info.height)
    n = None if duration is None else frame_count(duration, fps)
    length, end = info.video_duration or info.duration, start + (duration or 0.0)
    if duration is not None and end > length + 0.5 / fps + _SLACK_S:
        raise InvalidInput(
            f"{info.path}: the video lasts {length:.3f} s, but the range asked is "
            f"[{start:.3f}, {end:.3f}) s ({n} frames at {fps:g} fps)"
        )
    if n is None and start >= length:
        raise InvalidInput(
            f"{info.path}: the video lasts {length:.3f} s; start {start:.3f} s is past its end"
        )
    return _Plan(Path(info.path), start, fps, w, h, n, info.width * info.height, info.fps)


def _command(plan: _Plan, limit: int | None) -> list[str]:
    # Seek (accurately) to a point at least one source frame before `start`, so the frame on
    # screen at `start` is still decoded; the fps filter then samples from `start` exactly.
    margin = 1.0 + 2.0 / plan.src_fps if plan.src_fps > 0 else 2.0
    seek = max(0.0, plan.start - margin)
    in_kw = {"ss": f"{seek:.6f}"} if seek > 0 else {}
    v = ffmpeg.input(ff_url(plan.path), **in_kw)["v:0"]
    v = v.filter("fps", fps=rational(plan.fps), start_time=f"{plan.start - seek:.6f}", round="up")
    v = v.filter("setpts", "PTS-STARTPTS")  # output times from 0, so no CLI vsync dup/drop
    flags = "area" if plan.width * plan.height < plan.src_pixels else "bicubic"
    v = v.filter("scale", plan.width, plan.height, flags=f"{flags}+accurate_rnd+full_chroma_int")
    out_kw: dict[str, int] = {} if limit is None else {"frames:v": limit}
    out = v.output("pipe:", format="rawvideo", pix_fmt="rgb24", **out_kw)
    return ffmpeg_argv(out)


def _stream(plan: _Plan, limit: int | None, chunk: int) -> Iterator[np.ndarray]:
    """Run ffmpeg and yield (k, H, W, 3) chunks; pads a one-frame shortfall at the end of the video."""
    proc = FfmpegProcess(_command(plan, limit))
    got, last = 0, None
    try:
        while limit is None or got < limit:
            k = chunk if limit is None else min(chunk, limit - got)
            buf = np.empty((k, plan.height, plan.width, 3), np.uint8)
            nbytes = read_exact(proc.stdout, memoryview(buf).cast("B"))
            whole = nbytes // plan.frame_bytes
            if whole:
                got += whole
                last = buf[whole - 1].copy()  # the consumer may modify the chunk
                yield buf[:whole]
            if whole < k:
                break
        rc, err = proc.finish()
    finally:
        proc.kill()
    if rc != 0:
        raise InvalidInput(f"ffmpeg cannot decode the video of {plan.path}: {short_reason(err, plan.path)}")
    yield from _pad_tail(plan, limit, got, last)


def _pad_tail(plan: _Plan, limit: int | None, got: int, last: np.ndarray | None) -> Iterator[np.ndarray]:
    """With a `duration`, always deliver the frames promised: a one-frame shortfall (the fps filter's
    rounding at the very end of the stream) repeats the last frame; a larger one is an error."""
    if plan.n is None or limit is None or got >= limit:
        return
    if last is None or limit - got > 1:
        raise InvalidInput(
            f"{plan.path}: decoded only {got} of {limit} frames from {plan.start:.3f} s; "
            "the video track ends earlier than its container says (truncated file?)"
        )
    yield np.repeat(last[None], limit - got, axis=0)


def _open_plan(
    path: str | Path,
    start: float,
    duration: float | None,
    fps: float,
    size: tuple[int, int] | None,
    max_frames: int | None,
) -> tuple[MediaInfo, _Plan, int | None]:
    _check_args(start, duration, fps, size)
    if max_frames is not None and max_frames < 0:
        raise InvalidInput(f"max_frames must be >= 0, got {max_frames}")
    info = probe(path, require_video=True)
    if info.is_image:
        if start > 0 or duration is not None:
            raise InvalidInput(f"{info.path} is a still image; it has no time range to decode")
        w, h = (int(size[0]), int(size[1])) if size is not None else (info.width, info.height)
        return info, _Plan(Path(info.path), 0.0, fps, w, h, 1), 1
    plan = _plan(info, start, duration, fps, size)
    limit = plan.n if max_frames is None else (max_frames if plan.n is None else min(plan.n, max_frames))
    return info, plan, limit


def _still(info: MediaInfo, plan: _Plan) -> np.ndarray:
    """A still image as a 1-frame video, via load_image so EXIF orientation matches."""
    img = load_image(info.path)
    if img.shape[:2] != (plan.height, plan.width):
        shrink = plan.width * plan.height < img.shape[0] * img.shape[1]
        interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        img = cv2.resize(img, (plan.width, plan.height), interpolation=interp)
    return img[None]


def iter_video(
    path: str | Path,
    *,
    start: float = 0.0,
    duration: float | None = None,
    fps: float = 25.0,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    chunk: int = 50,
) -> Iterator[np.ndarray]:
    """Like `decode_video`, but yields (k, H, W, 3) uint8 RGB chunks of at most `chunk` frames, so a
    long video never sits in memory at once. Argument checks and range errors happen on the first
    `next()`. Stopping early (break / close()) stops ffmpeg.
    """
    if chunk < 1:
        raise InvalidInput(f"chunk must be >= 1, got {chunk}")
    info, plan, limit = _open_plan(path, start, duration, fps, size, max_frames)
    if limit == 0:
        return
    if info.is_image:
        yield _still(info, plan)
        return
    yield from _stream(plan, limit, chunk)


def decode_video(
    path: str | Path,
    *,
    start: float = 0.0,
    duration: float | None = None,
    fps: float = 25.0,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Decode frames of `path` as one (N, H, W, 3) uint8 RGB array at `fps`, from `start` seconds.

    N = round(duration * fps) when `duration` is given (the range must lie within the video, else
    InvalidInput naming the video's length and the range asked), otherwise all frames to the end;
    at most `max_frames`. `size=(width, height)` resizes (no crop). Rotation metadata is applied.
    A still image decodes as one frame. See the module docstring for the exact timeline rule.
    """
    info, plan, limit = _open_plan(path, start, duration, fps, size, max_frames)
    empty = np.empty((0, plan.height, plan.width, 3), np.uint8)
    if limit == 0:
        return empty
    if info.is_image:
        return _still(info, plan)
    chunks = _stream(plan, limit, chunk=64)
    if limit is None:
        parts = list(chunks)
        return np.concatenate(parts) if parts else empty
    out = np.empty((limit, plan.height, plan.width, 3), np.uint8)
    pos = 0
    for part in chunks:
        out[pos : pos + len(part)] = part
        pos += len(part)
    return out[:pos]
