"""Video files with an alpha channel, for editors: the placed speaker as a transparent layer.

Two formats, both read by common editors (Premiere, Resolve, Final Cut, After Effects, Kdenlive):
- 'webm': VP9 (libvpx-vp9) `yuva420p` in WebM; small files, browsers play it with transparency.
  ffprobe reports the stream as `yuv420p` with the tag `alpha_mode=1` (the alpha plane travels as
  side data that only libvpx decodes), so `probe_alpha` reports it as `yuva420p`.
- 'prores': ProRes 4444 (prores_ks, 16-bit alpha) `yuva444p10le` in QuickTime .mov; large, lossless-ish,
  the usual intermediate for editing (ffprobe reports `yuva444p12le`).

Colour is straight (not premultiplied) alpha; frames stream into ffmpeg's stdin one at a time.
Odd sizes are padded by one edge column/row with alpha 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from lihq.errors import Internal, InvalidInput
from lihq.media._ff import FfmpegProcess, ff_url, rational, short_reason

FORMATS = {"webm": ".webm", "prores": ".mov"}
_CODEC_ARGS = {
    "webm": [
        "-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-b:v", "0", "-crf", "30",
        "-deadline", "good", "-cpu-used", "4", "-row-mt", "1", "-f", "webm",
    ],
    "prores": [
        "-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le", "-alpha_bits", "16",
        "-vendor", "apl0", "-f", "mov",
    ],
}  # fmt: skip


@dataclass(frozen=True)
class AlphaInfo:
    codec: str
    pix_fmt: str  # with alpha: 'yuva420p' (VP9 alpha_mode=1) or 'yuva444p12le' ...
    width: int
    height: int
    frames: int

    @property
    def has_alpha(self) -> bool:
        return self.pix_fmt.startswith(("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya"))


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(f"alpha video format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


def _command(fmt: str, size: tuple[int, int], fps: float, out: Path) -> list[str]:
    w, h = size
    src = ["-f", "rawvideo", "-pix_fmt", "rgba", "-s", f"{w}x{h}", "-framerate", rational(fps), "-i", "pipe:"]
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *src, *_CODEC_ARGS[fmt], ff_url(out)]


class AlphaVideoWriter:
    """`with AlphaVideoWriter(path, fps, 'webm') as w: w.write(rgb, alpha)`; the file appears (atomically)
    at `path` when the block exits without error. rgb (n, H, W, 3) / alpha (n, H, W) uint8, or one frame."""

    def __init__(self, path: str | Path, fps: float, fmt: str = "webm") -> None:
        self.fmt = check_format(fmt)
        if not (fps > 0 and np.isfinite(fps)):
            raise InvalidInput(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self._tmp = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:8]}.partial{FORMATS[fmt]}")
        self._proc: FfmpegProcess | None = None
        self._size: tuple[int, int] | None = None  # (w, h) of the frames as given
        self.frames = 0

    def __enter__(self) -> AlphaVideoWriter:
        return self

    def _start(self, size: tuple[int, int]) -> FfmpegProcess:
        self._size = size
        even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        self._proc = FfmpegProcess(_command(self.fmt, even, self.fps, self._tmp), stdin=True, stdout=False)
        return self._proc

    def write(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        if rgb.ndim == 3:
            rgb, alpha = rgb[None], alpha[None]
        if (
            rgb.dtype != np.uint8
            or alpha.dtype != np.uint8
            or rgb.shape[:3] != alpha.shape
            or rgb.shape[3] != 3
        ):
            raise InvalidInput(
                f"alpha video: expected rgb (n, H, W, 3) and alpha (n, H, W) uint8, got {rgb.shape} {alpha.shape}"
            )
        if len(rgb) == 0:
            return
        size = (rgb.shape[2], rgb.shape[1])
        proc = self._proc or self._start(size)
        if size != self._size:
            raise InvalidInput(f"alpha video: frame size {size} differs from the first frames' {self._size}")
        rgba = np.concatenate([rgb, alpha[..., None]], axis=3)
        pad = ((0, 0), (0, size[1] % 2), (0, size[0] % 2), (0, 0))
        if any(p[1] for p in pad):
            rgba = np.pad(rgba, pad, mode="edge")
            rgba[:, size[1] :, :, 3] = 0
            rgba[:, :, size[0] :, 3] = 0
        try:
            proc.stdin.write(memoryview(np.ascontiguousarray(rgba)).cast("B"))
        except BrokenPipeError:
            pass  # ffmpeg died: finish() reports why
        self.frames += len(rgba)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is None:
            if exc_type is None:
                raise InvalidInput("alpha video: no frames were written")
            return
        if exc_type is not None:
            self._proc.kill()
            self._tmp.unlink(missing_ok=True)
            return
        rc, err = self._proc.finish()
        if rc != 0:
            self._tmp.unlink(missing_ok=True)
            raise Internal(
                f"ffmpeg failed to write the {self.fmt} alpha video: {short_reason(err, self._tmp)}"
            )
        os.replace(self._tmp, self.path)


def probe_alpha(path: str | Path) -> AlphaInfo:
    """Codec, pixel format (alpha-aware, see module docstring), size and frame count of `path`."""
    args = [
        "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
        "-show_entries", "stream=codec_name,pix_fmt,width,height,nb_read_packets:stream_tags",
        "-of", "json", ff_url(Path(path)),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise InvalidInput(f"ffprobe cannot read {path}: {short_reason(done.stderr, Path(path))}")
    streams = json.loads(done.stdout or b"{}").get("streams") or []
    if not streams:
        raise InvalidInput(f"{path}: no video stream")
    s = streams[0]
    pix_fmt = s.get("pix_fmt") or ""
    tags = {k.lower(): v for k, v in (s.get("tags") or {}).items()}
    if s.get("codec_name") in ("vp8", "vp9") and tags.get("alpha_mode") == "1" and pix_fmt.startswith("yuv4"):
        pix_fmt = "yuva" + pix_fmt[3:]
    return AlphaInfo(
        codec=s.get("codec_name") or "",
        pix_fmt=pix_fmt,
        width=int(s.get("width") or 0),
        height=int(s.get("height") or 0),
        frames=int(s.get("nb_read_packets") or 0),
    )
