"""The two per-render globals of the lip-sync stage, as store objects (docs/architecture.md §3).

- `MelObject` (`mel.npz`): the normalised mel of the whole speech track and the start column of the
  mel chunk of every video frame at the clip's fps. Computed once; any segment reads its chunks.
- `FaceTrack` (`track.npz`): the padded, smoothed face box of every frame of the whole clip.
  Smoothing looks 5 frames ahead, so it must run over the whole clip once, never per segment.

Both are `.npz` archives without pickles (`allow_pickle=False` on read), with a `kind` and a
`version` field; anything else is refused with InvalidInput.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from lihq.errors import InvalidInput

MEL_KIND = "lihq.wav2lip.mel"
TRACK_KIND = "lihq.wav2lip.track"
VERSION = 1


def _save(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _load(data: bytes, kind: str, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"{what}: not a {kind} object ({exc})") from exc
    if str(arrays.get("kind", "")) != kind:
        raise InvalidInput(f"{what}: not a {kind} object (kind {arrays.get('kind')!r})")
    if int(arrays.get("version", -1)) != VERSION:
        raise InvalidInput(f"{what}: {kind} version {arrays.get('version')} is not supported ({VERSION})")
    return arrays


@dataclass(frozen=True)
class MelObject:
    """mel (80, T) float32 (= float32 of upstream's float64 mel); starts (n_chunks,) int64 columns."""

    mel: np.ndarray
    starts: np.ndarray
    fps: float
    sample_rate: int = 16000
    n_samples: int = 0  # of the wav the mel was computed from (0: unknown)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def n_chunks(self) -> int:
        return int(self.starts.shape[0])

    def starts_for(self, first: int, count: int) -> np.ndarray:
        """Chunk starts of timeline frames [first, first + count).

        Frame i uses chunk i. Upstream makes only as many frames as chunks (a few fewer than the
        audio's duration at that fps); frames past the last chunk here reuse the last chunk, so the
        video keeps the audio's length and the mouth holds its final shape.
        """
        idx = np.minimum(np.arange(first, first + count), self.n_chunks - 1)
        return self.starts[idx]

    def to_bytes(self) -> bytes:
        return _save(
            {
                "kind": np.array(MEL_KIND),
                "version": np.array(VERSION),
                "mel": np.asarray(self.mel, dtype=np.float32),
                "starts": np.asarray(self.starts, dtype=np.int64),
                "fps": np.array(float(self.fps)),
                "sample_rate": np.array(int(self.sample_rate)),
                "n_samples": np.array(int(self.n_samples)),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "mel") -> MelObject:
        a = _load(data, MEL_KIND, what)
        mel, starts = a["mel"], a["starts"]
        if mel.ndim != 2 or starts.ndim != 1 or starts.size == 0 or starts.max() + 16 > mel.shape[1]:
            raise InvalidInput(f"{what}: inconsistent mel object (mel {mel.shape}, {starts.size} starts)")
        return cls(
            mel=mel,
            starts=starts,
            fps=float(a["fps"]),
            sample_rate=int(a["sample_rate"]),
            n_samples=int(a["n_samples"]),
        )


@dataclass(frozen=True)
class FaceTrack:
    """The face box of every frame [start, start + N) of a clip of `height` x `width` frames.

    boxes (N, 4) int64 in upstream's crop order (y1, y2, x1, x2); detected (N,) bool: False where the
    box was carried over from another frame (carry_last_box) or given (a fixed box).
    """

    boxes: np.ndarray
    detected: np.ndarray
    height: int
    width: int
    start: int = 0
    pads: tuple[int, int, int, int] = (0, 20, 0, 0)
    smoothed: bool = True
    source: str = "s3fd"

    @property
    def n_frames(self) -> int:
        return int(self.boxes.shape[0])

    def boxes_for(self, first: int, count: int) -> np.ndarray:
        """Boxes of timeline frames [first, first + count); InvalidInput outside the track."""
        lo, hi = first - self.start, first - self.start + count
        if lo < 0 or hi > self.n_frames:
            raise InvalidInput(
                f"frames [{first}, {first + count}) are outside the face track, which covers "
                f"[{self.start}, {self.start + self.n_frames}): track the whole clip first"
            )
        return self.boxes[lo:hi]

    def to_bytes(self) -> bytes:
        return _save(
            {
                "kind": np.array(TRACK_KIND),
                "version": np.array(VERSION),
                "boxes_y1y2x1x2": np.asarray(self.boxes, dtype=np.int64),
                "detected": np.asarray(self.detected, dtype=bool),
                "frame_hw": np.array([self.height, self.width], dtype=np.int64),
                "start": np.array(int(self.start)),
                "pads": np.array(self.pads, dtype=np.int64),
                "smoothed": np.array(bool(self.smoothed)),
                "source": np.array(self.source),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "track") -> FaceTrack:
        a = _load(data, TRACK_KIND, what)
        boxes, detected = a["boxes_y1y2x1x2"], a["detected"]
        if boxes.ndim != 2 or boxes.shape[1] != 4 or detected.shape != (boxes.shape[0],):
            raise InvalidInput(f"{what}: inconsistent face track (boxes {boxes.shape})")
        h, w = (int(v) for v in a["frame_hw"])
        return cls(
            boxes=boxes,
            detected=detected,
            height=h,
            width=w,
            start=int(a["start"]),
            pads=tuple(int(v) for v in a["pads"]),  # type: ignore[arg-type]
            smoothed=bool(a["smoothed"]),
            source=str(a["source"]),
        )
