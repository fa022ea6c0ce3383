"""Backgrounds for compositing: a solid colour, a still image, or a video (numpy + lihq.media).

A background delivers the frames behind output frames [start, start + count) of the timeline at the
speaker's fps, already fitted to the canvas. A video background is sampled at the speaker's fps
(`lihq.media.decode_video`: frame j of the background shows time `video_offset_s + j / fps`), so its
own frame rate never matters. It has B = round((length - offset) * fps) frames; output frame i uses
background frame i while i < B and then, by `video_end`:
- 'loop' (default): i mod B (the background restarts from its offset);
- 'hold': the last frame B - 1 stays;
- 'error': InvalidInput saying how long the background would need to be.
A longer background is simply cut to the speaker's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lihq import media
from lihq.errors import InvalidInput
from lihq.media.video import frame_count
from services.modnet.compose import FITS, check_canvas, fit_image

VIDEO_ENDS = ("loop", "hold", "error")
KINDS = ("color", "image", "video")


@dataclass(frozen=True)
class BackgroundSpec:
    """What to put behind the speaker. `path` for image/video; `color` (r, g, b) for 'color'."""

    kind: str = "color"
    color: tuple[int, int, int] = (255, 255, 255)
    path: Path | None = None
    video_offset_s: float = 0.0
    fit: str = "stretch"
    video_end: str = "loop"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"background kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.kind != "color" and self.path is None:
            raise InvalidInput(f"a {self.kind} background needs a file")
        if self.fit not in FITS:
            raise InvalidInput(f"background fit {self.fit!r}: expected one of {', '.join(FITS)}")
        if self.video_end not in VIDEO_ENDS:
            raise InvalidInput(f"video_end {self.video_end!r}: expected one of {', '.join(VIDEO_ENDS)}")
        if not (self.video_offset_s >= 0 and np.isfinite(self.video_offset_s)):
            raise InvalidInput(f"video_offset_s={self.video_offset_s}: must be a finite number >= 0")
        if self.kind != "video" and self.video_offset_s:
            raise InvalidInput("video_offset_s only applies to a video background")
        if len(self.color) != 3 or not all(0 <= int(c) <= 255 for c in self.color):
            raise InvalidInput(f"background color {self.color!r}: expected three values in 0..255")


class Background:
    """An opened background: `native_size` (w, h) or None for a colour; `frames(...)` per segment."""

    def __init__(self, spec: BackgroundSpec) -> None:
        self.spec = spec
        self.info: media.MediaInfo | None = None
        self._image: np.ndarray | None = None
        self._fitted: dict[tuple[int, int], np.ndarray] = {}
        if spec.kind == "image":
            self._image = _load_image(spec.path)  # type: ignore[arg-type]
        elif spec.kind == "video":
            self.info = _probe_video(spec.path)  # type: ignore[arg-type]
            if self.info.is_image:  # a still given as a video: use it as an image
                self._image = _load_image(spec.path)  # type: ignore[arg-type]

    @property
    def native_size(self) -> tuple[int, int] | None:
        if self._image is not None:
            return self._image.shape[1], self._image.shape[0]
        if self.info is not None:
            return self.info.width, self.info.height
        return None

    def canvas_size(self, speaker_size: tuple[int, int], width: int = 0, height: int = 0) -> tuple[int, int]:
        """The output size: (width, height) when given, else the background's own size, else the
        speaker frames' size (colour background). Giving only one of width/height is an error."""
        if (width > 0) != (height > 0) or width < 0 or height < 0:
            raise InvalidInput(f"output size {width}x{height}: give both width and height (> 0), or neither")
        if width > 0:
            return check_canvas((width, height))
        return check_canvas(self.native_size or speaker_size, "background")

    def frames(self, start: int, count: int, fps: float, canvas: tuple[int, int]) -> np.ndarray:
        """(count or 1, H, W, 3) uint8 RGB behind output frames [start, start + count); one frame
        (to broadcast) for a colour or an image."""
        w, h = check_canvas(canvas)
        if self.spec.kind == "color":
            return np.full((1, h, w, 3), self.spec.color, np.uint8)
        if self._image is not None:
            if (w, h) not in self._fitted:
                self._fitted = {(w, h): fit_image(self._image, (w, h), self.spec.fit)}
            return self._fitted[(w, h)][None]
        return self._video_frames(start, count, fps, (w, h))

    # -- video --------------------------------------------------------------------------------
    def available_frames(self, fps: float) -> int:
        """B: background frames from the offset to the end at `fps`."""
        assert self.info is not None
        length = self.info.video_duration or self.info.duration
        if self.spec.video_offset_s >= length:
            raise InvalidInput(
                f"background video: video_offset_s={self.spec.video_offset_s:g} s is past its end ({length:.3f} s)"
            )
        return frame_count(length - self.spec.video_offset_s, fps)

    def source_indices(self, start: int, count: int, fps: float) -> np.ndarray:
        """Background frame index for each output frame in [start, start + count) (module docstring)."""
        b = self.available_frames(fps)
        idx = np.arange(start, start + count)
        if self.spec.video_end == "loop":
            return idx % b
        if self.spec.video_end == "hold":
            return np.minimum(idx, b - 1)
        if count and idx[-1] >= b:
            have, need = b / fps, (start + count) / fps
            raise InvalidInput(
                f"the background video lasts {have:.3f} s from its offset, the speaker needs {need:.3f} s; "
                "use a longer background, a smaller video_offset_s, or video_end 'loop' / 'hold'"
            )
        return idx

    def _video_frames(self, start: int, count: int, fps: float, canvas: tuple[int, int]) -> np.ndarray:
        idx = self.source_indices(start, count, fps)
        decoded: dict[int, np.ndarray] = {}
        for lo, hi in _runs(np.unique(idx).tolist()):
            chunk = media.decode_video(
                self.spec.path,  # type: ignore[arg-type]
                start=self.spec.video_offset_s + lo / fps,
                duration=(hi - lo + 1) / fps,
                fps=fps,
            )
            if len(chunk) != hi - lo + 1:
                raise InvalidInput(f"background video: decoded {len(chunk)} of {hi - lo + 1} frames at {lo}")
            for j, frame in enumerate(chunk):
                decoded[lo + j] = fit_image(frame, canvas, self.spec.fit)
        if not count:
            return np.empty((0, canvas[1], canvas[0], 3), np.uint8)
        return np.stack([decoded[int(i)] for i in idx])


def _runs(sorted_unique: Sequence[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]: inclusive runs of consecutive indices."""
    runs: list[tuple[int, int]] = []
    for i in sorted_unique:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _load_image(path: Path) -> np.ndarray:
    try:
        return media.load_image(path)
    except InvalidInput as exc:
        raise InvalidInput(f"background image unreadable: {exc.message}") from exc


def _probe_video(path: Path) -> media.MediaInfo:
    try:
        return media.probe(path, require_video=True)
    except InvalidInput as exc:
        raise InvalidInput(f"background video unreadable: {exc.message}") from exc
