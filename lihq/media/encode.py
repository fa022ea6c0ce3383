"""Final encode: RGB frames (+ audio) -> H.264 yuv420p / AAC MP4 whose duration is the audio's.

Frames stream into ffmpeg's stdin as rawvideo, one at a time; nothing holds a copy of the whole video.
Odd widths/heights (H.264 4:2:0 needs even ones) are padded by repeating the last column/row, so the
output is at most one pixel wider/taller than the frames. With audio, the video gets exactly
N = round(audio_duration * fps) frames (the last frame held if too few arrive, the rest dropped if
too many) and the audio is cut/padded with silence to `audio_duration`: both streams, and so the
container, end within half a frame of the audio's duration.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import ffmpeg
import numpy as np

from lihq.errors import Internal, InvalidInput
from lihq.media._ff import FfmpegProcess, ff_url, ffmpeg_argv, rational, short_reason
from lihq.media.probe import probe
from lihq.media.video import frame_count

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
# The x264 presets LIHQ accepts, fastest first: the one table the encoder and the media stage read.
# x264's "placebo" is left out on purpose: many times slower than veryslow for no visible gain, it
# would only let one request tie up an encoder.
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


def check_preset(preset: str) -> str:
    """`preset` if it is one of X264_PRESETS, else InvalidInput naming the field and the choices."""
    if preset not in X264_PRESETS:
        raise InvalidInput(f"preset {preset!r}: expected one of {', '.join(X264_PRESETS)}")
    return preset


def _check_frame(frame: np.ndarray, shape: tuple[int, ...] | None, index: int) -> np.ndarray:
    f = np.asarray(frame)
    if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
        raise InvalidInput(f"frame {index}: expected (H, W, 3) uint8 RGB, got {f.shape} {f.dtype}")
    if f.shape[0] < 1 or f.shape[1] < 1:
        raise InvalidInput(f"frame {index}: empty picture {f.shape}")
    if shape is not None and f.shape != shape:
        raise InvalidInput(f"frame {index}: size {f.shape} differs from the first frame's {shape}")
    return f


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by one replicated edge row/column (yuv420p needs even sizes)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return np.ascontiguousarray(frame)
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _frames(frames: Iterable[np.ndarray] | np.ndarray, target: int | None) -> Iterator[np.ndarray]:
    """Validated, even-sized frames; exactly `target` of them when given (hold last / cut)."""
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise InvalidInput(f"frames must be (N, H, W, 3) uint8 RGB, got shape {frames.shape}")
    shape: tuple[int, ...] | None = None
    last: np.ndarray | None = None
    count = 0
    for frame in frames:
        if target is not None and count >= target:
            break
        f = _check_frame(frame, shape, count)
        shape = f.shape
        last = _even(f)
        count += 1
        yield last
    if last is None:
        raise InvalidInput("no frames to encode")
    for _ in range(count, target or 0):
        yield last


def _check_encode_args(fps: float, out: Path, crf: int, preset: str) -> str:
    if not fps > 0:
        raise InvalidInput(f"fps must be > 0, got {fps}")
    if not 0 <= crf <= 51:
        raise InvalidInput(f"crf must be in 0..51, got {crf}")
    check_preset(preset)
    container = _CONTAINERS.get(out.suffix.lower())
    if container is None:
        raise InvalidInput(f"{out}: output must end in .mp4, .m4v or .mov")
    return container


def _audio_target(audio_path: Path, audio_duration: float | None) -> float:
    info = probe(audio_path, require_audio=True)
    if audio_duration is None:
        return info.duration
    if not audio_duration > 0:
        raise InvalidInput(f"audio_duration must be > 0 s, got {audio_duration}")
    return float(audio_duration)


def _encode_cmd(
    size: tuple[int, int],
    fps: float,
    tmp: Path,
    container: str,
    audio: tuple[Path, float] | None,
    opts: dict[str, str | int],
) -> list[str]:
    w, h = size
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=rational(fps))
    video = video.filter("scale", out_color_matrix="bt709", flags="accurate_rnd+full_chroma_int")
    video = video.filter("format", "yuv420p")
    streams = [video]
    kw: dict[str, str | int] = {
        "vcodec": "libx264",
        "crf": opts["crf"],
        "preset": opts["preset"],
        "movflags": "+faststart",
        "colorspace": "bt709",
        "color_primaries": "bt709",
        "color_trc": "bt709",
        "color_range": "tv",
        "format": container,
    }
    if audio is not None:
        streams.append(_fit_audio(*audio))
        kw |= {"acodec": "aac", "audio_bitrate": opts["audio_bitrate"]}
    return ffmpeg_argv(ffmpeg.output(*streams, ff_url(tmp), **kw).overwrite_output())


def _temp_beside(out: Path) -> Path:
    """A hidden temporary name next to `out` (same filesystem, so the final rename is atomic)."""
    return out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.partial{out.suffix}")


def _feed(proc: FfmpegProcess, first: np.ndarray, rest: Iterator[np.ndarray]) -> None:
    """Write frames to ffmpeg's stdin; a dead ffmpeg (broken pipe) is reported by the caller."""
    try:
        proc.stdin.write(memoryview(first).cast("B"))
        for f in rest:
            proc.stdin.write(memoryview(f).cast("B"))
    except BrokenPipeError:
        pass


def encode_video(
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: float,
    out_path: str | Path,
    *,
    audio_path: str | Path | None = None,
    audio_duration: float | None = None,
    crf: int = 18,
    preset: str = "medium",
    audio_bitrate: str = "192k",
) -> Path:
    """Encode (H, W, 3) uint8 RGB frames (an iterable, or one (N, H, W, 3) array) to an MP4/MOV:
    H.264 (libx264, yuv420p, BT.709 tagged, +faststart) and, with `audio_path`, AAC audio.

    With audio, the output lasts the audio's duration (or `audio_duration` when given: the audio is
    cut or padded with silence to it): frames are held or cut to round(duration * fps). Without audio
    it lasts N/fps. Odd sizes are padded to even (module docstring). Written atomically; returns the path.
    """
    out = Path(out_path)
    container = _check_encode_args(fps, out, crf, preset)
    audio = None
    if audio_path is not None:
        apath = Path(audio_path)
        dur = _audio_target(apath, audio_duration)
        audio = (apath, dur)
    elif audio_duration is not None:
        raise InvalidInput("audio_duration needs audio_path")
    gen = _frames(frames, None if audio is None else frame_count(audio[1], fps))
    first = next(gen)
    size = (first.shape[1], first.shape[0])
    tmp = _temp_beside(out)
    opts: dict[str, str | int] = {"crf": int(crf), "preset": preset, "audio_bitrate": audio_bitrate}
    cmd = _encode_cmd(size, fps, tmp, container, audio, opts)
    return run_encoder(cmd, tmp, out, lambda proc: _feed(proc, first, gen), str(out))


def run_encoder(cmd: list[str], tmp: Path, out: Path, feed, what: str) -> Path:
    """Run ffmpeg `cmd` (writing `tmp`), give its stdin to `feed(proc)`, then rename `tmp` to `out`; on
    any failure `tmp` is removed and `out` untouched (Internal naming `what` and ffmpeg's reason)."""
    proc = FfmpegProcess(cmd, stdin=True, stdout=False)
    try:
        feed(proc)
        rc, err = proc.finish()
    except BaseException:
        proc.kill()
        tmp.unlink(missing_ok=True)
        raise
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise Internal(f"ffmpeg failed to encode {what}: {short_reason(err, tmp)}")
    os.replace(tmp, out)
    return out


def _fit_audio(audio_path: Path, dur: float) -> ffmpeg.nodes.FilterableStream:
    """The first audio stream of `audio_path`, cut or padded with silence to exactly `dur` seconds."""
    a = ffmpeg.input(ff_url(audio_path), t=f"{dur:.6f}")["a:0"].filter("apad", whole_dur=f"{dur:.6f}")
    return a.filter("atrim", duration=f"{dur:.6f}")


def mux_audio(
    video_path: str | Path,
    audio_path: str | Path,
    out_path: str | Path,
    *,
    audio_bitrate: str = "192k",
) -> Path:
    """Put `audio_path`'s first audio stream (as AAC) beside `video_path`'s video, so the output lasts
    the audio's duration. A video already that long (within half a frame) is stream-copied; otherwise
    it is re-encoded (H.264 CRF 18) to round(duration * fps) frames, its last frame held or the rest
    cut (stream copy cannot cut H.264 exactly). Written atomically; returns the path.
    """
    out = Path(out_path)
    container = _check_encode_args(1.0, out, 18, "medium")
    vinfo = probe(video_path, require_video=True)
    dur = _audio_target(Path(audio_path), None)
    fps = vinfo.fps or 25.0
    v = ffmpeg.input(ff_url(Path(video_path)))["v:0"]
    kw: dict[str, str] = {"vcodec": "copy"}
    if abs(dur - vinfo.duration) > 0.5 / fps:
        hold = max(0.0, dur - vinfo.duration) + 1.0 / fps
        v = v.filter("tpad", stop_mode="clone", stop_duration=f"{hold:.6f}")
        v = v.filter("trim", end_frame=frame_count(dur, fps))
        kw = {"vcodec": "libx264", "crf": "18", "pix_fmt": "yuv420p"}
    kw |= {"acodec": "aac", "audio_bitrate": audio_bitrate, "movflags": "+faststart", "format": container}
    tmp = _temp_beside(out)
    node = ffmpeg.output(v, _fit_audio(Path(audio_path), dur), ff_url(tmp), **kw).overwrite_output()
    rc, err = FfmpegProcess(ffmpeg_argv(node), stdout=False).finish()
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise Internal(f"ffmpeg failed to mux {out}: {short_reason(err, tmp)}")
    os.replace(tmp, out)
    return out
