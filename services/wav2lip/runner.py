"""Wav2LipRunner: the lip-sync stage's model work on arrays (no store, gRPC or Ray here).

It resolves and loads weights once (Wav2Lip `wav2lip` / `wav2lip_gan`, S3FD), owns device, precision
and batching, and exposes three steps:

- `prepare_audio(wav, fps)` -> MelObject (the per-render mel global);
- `detect(frames)` -> one (x1, y1, x2, y2) detection or None per frame (S3FD, batched); the servicer
  turns a whole clip's detections into a FaceTrack with `services.wav2lip.track.build_track`;
- `lip_sync(frames, start, fps, mel, track, checkpoint)` -> the frames with the mouth re-generated.

Frames are (N, H, W, 3) uint8 **RGB** (frame packs); the BGR the networks expect is made inside.
A frame's output depends only on that frame, its box and its mel chunk, never on which segment or
batch it is rendered in: CPU convolutions give the same bits for any batch size of 2 or more (a
batch of one takes another kernel path), so a lone face is run as a batch of two.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lihq.config import WeightsConfig
from lihq.errors import InvalidInput, ResourceExhausted, WeightsMissing
from lihq.torchutil import autocast, batched, check_precision, maybe_compile, resolve_device
from lihq.weights import require, weights_id
from services.wav2lip import audio
from services.wav2lip.checkpoint import load_s3fd, load_wav2lip
from services.wav2lip.detect import Rect, detect_batch
from services.wav2lip.faces import crop_faces, face_windows, paste_faces, prediction_u8
from services.wav2lip.objects import FaceTrack, MelObject

CHECKPOINTS = ("wav2lip", "wav2lip_gan")
DEFAULT_CHECKPOINT = "wav2lip_gan"  # LIHQ's default
Detector = Callable[[np.ndarray], list[Rect | None]]


@dataclass(frozen=True)
class Wav2LipRunnerConfig:
    """Runtime settings. Explicit `*_path`s win over the registry files under `weights_dir`."""

    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 128  # faces per Wav2Lip forward (upstream default)
    detect_batch_size: int = 16  # frames per S3FD forward (upstream default)
    # S3FD sees frames scaled down to this longer side (0: full size, as upstream's default
    # resize_factor 1); boxes are scaled back. A dubbed 1080p video's faces are large, and S3FD's cost
    # grows with the pixels: 1080p -> 720 is ~2.2x fewer. The 256² image path is never scaled.
    detect_max_side: int = 720
    channels_last: bool = False
    allow_tf32: bool = False  # TF32 convs on Ampere+ move outputs by ~1e-3; off keeps conformance
    compile: bool = False  # torch.compile the Wav2Lip generator (GPU throughput; first batch compiles)
    weights_dir: Path | None = None
    wav2lip_path: str | None = None
    wav2lip_gan_path: str | None = None
    s3fd_path: str | None = None
    max_fps: float = 240.0

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.detect_max_side < 0:
            raise InvalidInput("detect_max_side must be >= 0 (0: detect at full size)")
        if self.batch_size < 1 or self.detect_batch_size < 1:
            raise InvalidInput("batch_size and detect_batch_size must be >= 1")


def _check_frames(frames: np.ndarray) -> None:
    if (
        not isinstance(frames, np.ndarray)
        or frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[3] != 3
    ):
        shape = getattr(frames, "shape", None)
        raise InvalidInput(
            f"frames must be (N, H, W, 3) uint8 RGB, got {getattr(frames, 'dtype', '?')} {shape}"
        )


class Wav2LipRunner:
    def __init__(self, cfg: Wav2LipRunnerConfig | None = None, detector: Detector | None = None) -> None:
        """`detector` replaces S3FD (tests inject a known track; other detectors can be plugged in)."""
        self.cfg = cfg or Wav2LipRunnerConfig()
        self.device = resolve_device(self.cfg.device)
        self._detector = detector
        self._lock = threading.Lock()
        self._nets: dict[str, torch.nn.Module] = {}
        self._ids: dict[str, str] = {}
        if self.device.type == "cuda":
            torch.backends.cudnn.allow_tf32 = self.cfg.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = self.cfg.allow_tf32

    # -- weights ------------------------------------------------------------------------------
    def weights_path(self, name: str) -> Path:
        """The file of `name` ('wav2lip', 'wav2lip_gan', 's3fd'); WeightsMissing names the fetch command."""
        explicit = {"wav2lip": self.cfg.wav2lip_path, "wav2lip_gan": self.cfg.wav2lip_gan_path}
        explicit["s3fd"] = self.cfg.s3fd_path
        if name not in explicit:
            raise InvalidInput(f"unknown checkpoint {name!r}; expected one of {', '.join(CHECKPOINTS)}")
        if explicit[name]:
            path = Path(explicit[name])  # type: ignore[arg-type]
            if not path.is_file():
                raise WeightsMissing(
                    f"weights {name!r} missing: {path} (set in the app args); fix the path or run "
                    f"`lihq weights fetch {name}` and drop the explicit path",
                    weight=name,
                )
            return path
        root = self.cfg.weights_dir or WeightsConfig.from_env().dir
        return Path(require(name, root))  # type: ignore[arg-type]

    def model_id(self, name: str) -> str:
        """`synthetic:<seed>` or `sha256:<hex>` of the weights file (cached per process)."""
        path = self.weights_path(name)
        key = f"{name}:{path}:{path.stat().st_mtime_ns}:{path.stat().st_size}"
        with self._lock:
            if key not in self._ids:
                self._ids[key] = weights_id(path)
            return self._ids[key]

    def detector_id(self) -> str:
        """Model id of the face detector: the S3FD weights' id, or `injected:<name>` for a custom one."""
        if self._detector is not None:
            return f"injected:{getattr(self._detector, '__name__', type(self._detector).__name__)}"
        return self.model_id("s3fd")

    def _net(self, name: str) -> torch.nn.Module:
        with self._lock:
            if name not in self._nets:
                path = self.weights_path(name)
                net = load_s3fd(path) if name == "s3fd" else load_wav2lip(path)
                net = net.to(self.device)
                if self.cfg.channels_last:
                    net = net.to(memory_format=torch.channels_last)
                if name != "s3fd":
                    net = maybe_compile(net, self.cfg.compile)
                self._nets[name] = net
            return self._nets[name]

    def preload(self, names: tuple[str, ...]) -> None:
        for name in names:
            self._net(name)

    # -- audio --------------------------------------------------------------------------------
    def prepare_audio(self, wav: np.ndarray, fps: float) -> MelObject:
        """The mel global of 16 kHz float samples for a video at `fps`."""
        if not (math.isfinite(fps) and 0 < fps <= self.cfg.max_fps):
            raise InvalidInput(f"fps={fps}: must be in (0, {self.cfg.max_fps}]")
        mel = audio.melspectrogram(wav)
        starts = audio.mel_chunk_starts(mel.shape[1], fps)
        return MelObject(mel=mel.astype(np.float32), starts=starts, fps=float(fps), n_samples=len(wav))

    # -- faces --------------------------------------------------------------------------------
    def detect(self, frames: np.ndarray) -> list[Rect | None]:
        """One S3FD detection (x1, y1, x2, y2) or None per (N, H, W, 3) uint8 RGB frame."""
        _check_frames(frames)
        if self._detector is not None:
            return list(self._detector(frames))
        net = self._net("s3fd")
        h, w = frames.shape[1:3]
        m = self.cfg.detect_max_side
        scale = m / max(h, w) if m and max(h, w) > m else 1.0
        out: list[Rect | None] = []
        for s, e in batched(len(frames), self.cfg.detect_batch_size):
            batch = frames[s:e] if scale == 1.0 else downscale(frames[s:e], scale)
            with _OomGuard("S3FD", e - s):
                out += detect_batch(net, batch, self.device)
        if scale == 1.0:
            return out
        return [None if r is None else scale_rect(r, 1.0 / scale, h, w) for r in out]

    # -- lip sync -----------------------------------------------------------------------------
    def lip_sync(
        self,
        frames: np.ndarray,
        start: int,
        fps: float,
        mel: MelObject,
        track: FaceTrack,
        checkpoint: str = DEFAULT_CHECKPOINT,
        precision: str | None = None,
    ) -> np.ndarray:
        """Timeline frames [start, start + N) with the face of `track` re-generated from `mel`.

        Frame i uses mel chunk i (the last chunk past the end, see MelObject.starts_for) and box i.
        """
        _check_frames(frames)
        self._check_inputs(frames, fps, mel, track, checkpoint)
        precision = check_precision(precision or self.cfg.precision)
        boxes = track.boxes_for(start, len(frames))
        starts = mel.starts_for(start, len(frames))
        net = self._net(checkpoint)
        out = np.empty_like(frames)
        for s, e in batched(len(frames), self.cfg.batch_size):
            with _OomGuard("Wav2Lip", e - s):
                preds = self._forward(net, frames[s:e], boxes[s:e], mel.mel, starts[s:e], precision)
            out[s:e] = paste_faces(frames[s:e], preds, boxes[s:e])
        return out

    def _check_inputs(
        self, frames: np.ndarray, fps: float, mel: MelObject, track: FaceTrack, ckpt: str
    ) -> None:
        if ckpt not in CHECKPOINTS:
            raise InvalidInput(f"checkpoint {ckpt!r}: expected one of {', '.join(CHECKPOINTS)}")
        if abs(fps - mel.fps) > 1e-6 * max(1.0, fps):
            raise InvalidInput(f"the frames are at {fps} fps but the mel was prepared for {mel.fps} fps")
        if frames.shape[1:3] != (track.height, track.width):
            raise InvalidInput(
                f"the frames are {frames.shape[2]}x{frames.shape[1]}, the face track was made on "
                f"{track.width}x{track.height} frames"
            )

    @torch.inference_mode()
    def _forward(
        self,
        net: torch.nn.Module,
        frames: np.ndarray,
        boxes: np.ndarray,
        mel: np.ndarray,
        starts: np.ndarray,
        precision: str,
    ) -> np.ndarray:
        """(n, 96, 96, 3) uint8 RGB predicted faces for n frames."""
        n = len(frames)
        faces = torch.from_numpy(crop_faces(frames, boxes)).to(self.device)
        chunks = torch.from_numpy(audio.mel_chunks(mel, starts)).to(self.device)
        if n == 1:  # batch-size-1 kernels differ in the last bits: keep every face on the batched path
            faces, chunks = faces.repeat(2, 1, 1, 1), chunks.repeat(2, 1, 1, 1)
        windows = face_windows(faces)
        if self.cfg.channels_last:
            windows = windows.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, precision):
            pred = net(chunks, windows)
        return prediction_u8(pred[:n])


class _OomGuard:
    """GPU out-of-memory -> ResourceExhausted (retryable) naming the batch that did not fit."""

    def __init__(self, what: str, n: int) -> None:
        self.what, self.n = what, n

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc_type is not None and issubclass(exc_type, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
            raise ResourceExhausted(
                f"{self.what}: GPU out of memory on a batch of {self.n}; lower the batch size"
            ) from exc
        return False


def downscale(frames: np.ndarray, scale: float) -> np.ndarray:
    """(N, H, W, 3) uint8 frames resized by `scale` < 1 (area interpolation)."""
    import cv2

    h, w = frames.shape[1:3]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def scale_rect(rect: Rect, factor: float, height: int, width: int) -> Rect:
    """A box found on a scaled frame, in the full frame's pixels (clipped to it)."""
    x1, y1, x2, y2 = (round(v * factor) for v in rect)
    return (max(0, x1), max(0, y1), min(width, x2), min(height, y2))
