"""`probe`: what a media file holds, via ffprobe, with clear rejections of what cannot work."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from lihq.errors import InvalidInput
from lihq.media._ff import check_file, ff_url, short_reason

# Still pictures probe as "image2" or "<codec>_pipe"; these may be either a still or an animation.
_ANIMATABLE_IMAGES = {"gif", "webp", "apng"}
# ffprobe will "read" plain text as ANSI art; that is never media we want.
_TEXT_FORMATS = {"tty"}
_TEXT_CODECS = {"ansi", "text", "subrip", "ass", "webvtt"}
_PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file (first video stream, first audio stream).

    width/height are the *display* size: with a 90/270 degree `rotation` they are the coded size
    swapped, i.e. the shape `decode_video` returns. `rotation` is the counter-clockwise turn (0, 90,
    180, 270) the display matrix / rotate tag asks for; decoding applies it. `fps` is 0 and
    `n_frames` 1 for still images; `n_frames` is round(duration*fps) when the container stores none.
    `duration` is the container's (the longest stream); `video_duration` the video stream's own when
    the container states it (it can be shorter, e.g. a clip whose audio runs on), else `duration`.
    """

    path: str
    format_name: str
    duration: float
    size_bytes: int
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    n_frames: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_rate: int = 0
    audio_channels: int = 0
    rotation: int = 0
    is_image: bool = False
    video_duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of all fields."""
        return dataclasses.asdict(self)


def _ratio(text: str | None) -> float:
    try:
        f = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(f)


def _num(value: Any) -> float:
    """ffprobe's numbers come as strings; anything unparseable is 0."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _positive(value: Any) -> float:
    """A duration-like number, 0 when unknown, NaN, infinite or negative."""
    f = _num(value)
    return f if math.isfinite(f) and f > 0 else 0.0


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return int(round(_num(side["rotation"]))) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    if tag is not None:  # older ffprobe: clockwise degrees in a tag
        return (-int(round(_num(tag)))) % 360
    return 0


def _run_ffprobe(p: Path) -> dict[str, Any]:
    """ffprobe's JSON (the same command as `ffmpeg.probe`, which has no timeout)."""
    args = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", ff_url(p)]
    try:
        done = subprocess.run(args, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"ffprobe cannot read {p}: no answer within {_PROBE_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        raise InvalidInput(f"ffprobe cannot read {p}: {short_reason(done.stderr, p)}")
    try:
        return json.loads(done.stdout.decode("utf-8", "replace"))
    except json.JSONDecodeError:
        raise InvalidInput(f"ffprobe cannot read {p}: unparseable ffprobe output") from None


def _pick(streams: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    for s in streams:
        if s.get("codec_type") != kind:
            continue
        if kind == "video" and (s.get("disposition") or {}).get("attached_pic"):
            continue  # cover art in an mp3/m4a is not a video
        return s
    return None


def _video_fields(v: dict[str, Any], fmt_name: str, duration: float) -> dict[str, Any]:
    rotation = _rotation(v)
    w, h = int(_num(v.get("width"))), int(_num(v.get("height")))
    if rotation in (90, 270):
        w, h = h, w
    nb_text = str(v.get("nb_frames", ""))
    nb = int(nb_text) if nb_text.isdigit() else 0
    is_image = fmt_name == "image2" or fmt_name.endswith("_pipe")
    is_image = is_image or (fmt_name in _ANIMATABLE_IMAGES and nb <= 1 and duration <= 0.05)
    fps = 0.0 if is_image else _ratio(v.get("avg_frame_rate")) or _ratio(v.get("r_frame_rate"))
    if is_image:
        nb = 1
    elif nb <= 0:
        nb = int(round((_positive(v.get("duration")) or duration) * fps))
    return {
        "width": w,
        "height": h,
        "fps": fps,
        "n_frames": nb,
        "video_codec": v.get("codec_name"),
        "rotation": rotation,
        "is_image": is_image,
    }


def _build_info(p: Path, data: dict[str, Any]) -> MediaInfo:
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    fmt_name = str(fmt.get("format_name") or "")
    v, a = _pick(streams, "video"), _pick(streams, "audio")
    if fmt_name in _TEXT_FORMATS or (v is not None and v.get("codec_name") in _TEXT_CODECS):
        raise InvalidInput(f"ffprobe cannot read {p}: it is text, not audio, video or an image")
    stream_durs = [_positive(s.get("duration")) for s in (v, a) if s is not None]
    duration = _positive(fmt.get("duration")) or max(stream_durs, default=0.0)
    fields: dict[str, Any] = {}
    if v is not None:
        fields |= _video_fields(v, fmt_name, duration)
        fields["video_duration"] = _positive(v.get("duration")) or duration
        if fields["is_image"]:
            duration = fields["video_duration"] = 0.0
    if a is not None:
        fields["audio_codec"] = a.get("codec_name")
        fields["audio_rate"] = int(_num(a.get("sample_rate")))
        fields["audio_channels"] = int(_num(a.get("channels")))
    return MediaInfo(
        path=str(p),
        format_name=fmt_name,
        duration=duration,
        size_bytes=p.stat().st_size,
        has_video=v is not None,
        has_audio=a is not None,
        **fields,
    )


def _validate(
    info: MediaInfo, *, require_video: bool, require_audio: bool, max_w: int, max_h: int, max_dur: float
) -> None:
    p = info.path
    if not (info.has_video or info.has_audio):
        raise InvalidInput(f"{p} contains no audio or video stream")
    if require_video and not info.has_video:
        raise InvalidInput(f"{p} has no video stream (an image or a video is needed; it holds only audio)")
    if require_audio and not info.has_audio:
        raise InvalidInput(f"{p} has no audio stream (speech audio is needed)")
    if info.has_video and (info.width <= 0 or info.height <= 0):
        raise InvalidInput(f"{p}: the video stream has no picture size")
    if info.width > max_w or info.height > max_h:
        raise InvalidInput(
            f"{p} is {info.width}x{info.height} pixels; the largest supported is {max_w}x{max_h} "
            "(scale it down first)"
        )
    timed = info.has_audio or (info.has_video and not info.is_image)
    if timed and info.duration <= 0:
        raise InvalidInput(f"{p} has a zero or unknown duration (is it truncated?)")
    if info.duration > max_dur:
        raise InvalidInput(
            f"{p} lasts {info.duration:.1f} s; the longest supported is {max_dur:.0f} s (cut it first)"
        )


def probe(
    path: str | Path,
    *,
    require_video: bool = False,
    require_audio: bool = False,
    max_width: int = 8192,
    max_height: int = 8192,
    max_duration: float = 3600.0,
) -> MediaInfo:
    """Describe `path` with ffprobe; raise InvalidInput (with a reason a user can act on) when the
    file is missing, empty, not media, lacks a required stream, has no duration, or is absurdly big.

    Images (png/jpg/...) are a video stream of one frame (`is_image`, duration 0, fps 0).
    """
    p = check_file(path)
    info = _build_info(p, _run_ffprobe(p))
    _validate(
        info,
        require_video=require_video,
        require_audio=require_audio,
        max_w=max_width,
        max_h=max_height,
        max_dur=max_duration,
    )
    return info
