"""MediaRunner: the CPU work of the media stage on local files and arrays.

No store, no gRPC, no Ray: the servicer fetches objects to a work dir, calls these methods and puts
the results back. Everything here raises `lihq.errors.InvalidInput` with a message a user can act on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lihq import media
from lihq.errors import InvalidInput
from lihq.framepack import FramePack, pack_frames
from lihq.media.encode import check_preset
from lihq.media.kinds import IMAGE_CODECS as _IMAGE_CODECS  # noqa: F401
from lihq.media.kinds import KINDS, MAX_DURATION_S, MAX_SIDE, check_upload  # noqa: F401


@dataclass(frozen=True)
class MediaRunnerConfig:
    """Limits and defaults. Frame sizes and durations beyond these are refused up front."""

    max_duration_s: float = MAX_DURATION_S
    max_side: int = MAX_SIDE
    max_out_side: int = 4096
    max_fps: float = 240.0
    max_segment_frames: int = 10_000
    audio_rates: tuple[int, ...] = (16000,)
    allowed_rates: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True)
class CutSegment:
    index: int
    start: int
    end: int
    data: bytes  # a frame pack


def n_frames_for(duration_s: float, fps: float) -> int:
    """Frames covering [0, duration) at fps: frame i shows time i/fps; N rounds half up (lihq.media)."""
    return max(1, media.frame_count(duration_s, fps))


def segment_bounds(total: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, total)) for s in range(0, total, size)]


class MediaRunner:
    def __init__(self, cfg: MediaRunnerConfig | None = None) -> None:
        self.cfg = cfg or MediaRunnerConfig()

    # -- ingest -------------------------------------------------------------------------------
    def probe_upload(self, path: Path, kind: str) -> media.MediaInfo:
        """Probe and check that the file can serve as `kind` ('any', 'image', 'audio', 'video')."""
        return check_upload(path, kind, self.cfg.max_side, self.cfg.max_duration_s)

    # -- audio --------------------------------------------------------------------------------
    def check_rates(self, rates: Iterable[int]) -> tuple[int, ...]:
        out = tuple(dict.fromkeys(int(r) for r in rates)) or self.cfg.audio_rates
        bad = [r for r in out if r not in self.cfg.allowed_rates]
        if bad:
            raise InvalidInput(f"unsupported sample rate(s) {bad}; allowed: {list(self.cfg.allowed_rates)}")
        return out

    def extract_audio(
        self, path: Path, rates: tuple[int, ...], start: float = 0.0, duration: float | None = None
    ) -> dict[int, np.ndarray]:
        """Mono float32 speech at each rate. The source must have an audio stream of non-zero length."""
        if start < 0 or (duration is not None and duration <= 0):
            raise InvalidInput(
                f"audio range start={start} duration={duration}: start must be >= 0, duration > 0"
            )
        media.probe(path, require_audio=True, max_duration=self.cfg.max_duration_s)
        out: dict[int, np.ndarray] = {}
        for rate in rates:
            samples = media.decode_audio(path, rate, start=start, duration=duration)
            if samples.size == 0:
                raise InvalidInput("the audio is empty in the requested range")
            out[rate] = samples
        return out

    def write_wav(self, path: Path, samples: np.ndarray, rate: int) -> Path:
        media.write_wav(path, samples, rate)
        return path

    # -- reference video ----------------------------------------------------------------------
    def check_cut(self, offset: float, duration: float, fps: float, size: tuple[int, int], seg: int) -> None:
        c = self.cfg
        if not (offset >= 0 and math.isfinite(offset)):
            raise InvalidInput(f"offset_s={offset}: must be a finite number >= 0")
        if not (duration > 0 and math.isfinite(duration)) or duration > c.max_duration_s:
            raise InvalidInput(f"duration_s={duration}: must be > 0 and <= {c.max_duration_s}")
        if not 0 < fps <= c.max_fps:
            raise InvalidInput(f"fps={fps}: must be in (0, {c.max_fps}]")
        w, h = size
        if not (16 <= w <= c.max_out_side and 16 <= h <= c.max_out_side):
            raise InvalidInput(f"size {w}x{h}: width and height must be in [16, {c.max_out_side}]")
        if not 1 <= seg <= c.max_segment_frames:
            raise InvalidInput(f"segment_frames={seg}: must be in [1, {c.max_segment_frames}]")

    def cut_video(
        self, path: Path, offset: float, duration: float, fps: float, size: tuple[int, int], seg: int
    ) -> Iterator[CutSegment]:
        """Yield one frame pack per segment of [offset, offset + duration) at fps and size (w, h)."""
        self.check_cut(offset, duration, fps, size, seg)
        info = media.probe(path, require_video=True, max_duration=self.cfg.max_duration_s)
        if offset + duration > info.duration + 1e-3:
            raise InvalidInput(
                f"the reference video lasts {info.duration:.3f} s; the range [{offset:.3f}, "
                f"{offset + duration:.3f}) s needs it to last at least {offset + duration:.3f} s "
                "(use a smaller offset or a longer video)"
            )
        total = n_frames_for(duration, fps)
        frames = media.decode_video(path, start=offset, duration=total / fps, fps=fps, size=size)
        if len(frames) < total:  # the last frame of a video that ends exactly at the range's end
            if len(frames) == 0:
                raise InvalidInput("no frames could be decoded from the reference video in that range")
            pad = np.repeat(frames[-1:], total - len(frames), axis=0)
            frames = np.concatenate([frames, pad])
        frames = frames[:total]
        for i, (s, e) in enumerate(segment_bounds(total, seg)):
            yield CutSegment(i, s, e, pack_frames(np.ascontiguousarray(frames[s:e]), fps=fps, start=s))

    # -- final encode -------------------------------------------------------------------------
    @staticmethod
    def check_contiguous(packs: list[FramePack]) -> None:
        if not packs:
            raise InvalidInput("no frame packs to encode")
        first = packs[0]
        expect = first.start
        for i, p in enumerate(packs):
            if p.start != expect:
                raise InvalidInput(
                    f"frame pack {i} starts at frame {p.start}, expected {expect}: packs must be contiguous and in order"
                )
            if (p.width, p.height) != (first.width, first.height) or abs(p.fps - first.fps) > 1e-9:
                raise InvalidInput(
                    f"frame pack {i} is {p.width}x{p.height}@{p.fps}, the first is {first.width}x{first.height}@{first.fps}"
                )
            expect = p.end

    def encode(
        self,
        frames: Iterable[np.ndarray],
        fps: float,
        out_path: Path,
        audio_path: Path | None,
        crf: int = 18,
        preset: str = "medium",
        max_duration_s: float = 0.0,
    ) -> media.MediaInfo:
        if not 0 <= crf <= 51:
            raise InvalidInput(f"crf={crf}: must be in [0, 51]")
        check_preset(preset)  # the one x264 preset table (lihq/media/encode.py)
        duration = None
        if audio_path is not None:
            duration = media.probe(audio_path, require_audio=True).duration
            if max_duration_s > 0:
                duration = min(duration, max_duration_s)
        media.encode_video(
            frames, fps, out_path, audio_path=audio_path, audio_duration=duration, crf=crf, preset=preset
        )
        return media.probe(out_path, require_video=True)
