"""GfpganRunner: GFPGAN face restoration on arrays (no store, no gRPC, no Ray).

Loads the nets once (lazily, per GFPGAN version; the RealESRGAN background upsampler only when a
request asks for it), owns device, precision and batching, and restores a segment of frames:
(N, H, W, 3) uint8 RGB in -> (N, H', W', 3) uint8 RGB out, through the batched path
(services/gfpgan/batched.py), which reproduces `GFPGANer.enhance` (gfpgan 1.3.8) frame by frame.

Output size: `upscale` s (default 4, LIHQ's pass 2: 256² -> 1024²) gives int(h*s) x int(w*s); a
pass-1 request asks for `output_size` instead (s = output_size / max(h, w); LIHQ's pass 1 only
feeds FOMM pass 2, which works at 256², so 256 -> s = 1) and should leave the background upsampler
off. Noise: services/gfpgan/noise.py (fixed, seeded noise by default). Errors: InvalidInput for bad
parameters or frames, WeightsMissing for absent weights, ResourceExhausted on GPU out-of-memory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from lihq.config import WeightsConfig
from lihq.errors import InvalidInput, ResourceExhausted
from lihq.torchutil import check_precision, resolve_device
from lihq.weights import require, weights_id
from services.gfpgan.batched import BatchSettings, FacePlan, restore_segment
from services.gfpgan.checkpoint import FACE_SIZE, FaceModels, add_restorer, check_version, load_face_models
from services.gfpgan.noise import NoiseSpec, NoisyRestorer
from services.gfpgan.upsampler import BackgroundUpsampler

MAX_UPSCALE = 8
MAX_OUT_SIDE = 4096
DEFAULT_SMOOTH_RADIUS = 2


@dataclass(frozen=True)
class GfpganConfig:
    """Runner settings: the one definition of each (the app's args hold this config, GfpganAppArgs)."""

    weights_dir: Path | None = None  # None: LIHQ_WEIGHTS_DIR, read when the runner is made
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 8
    detect_batch_size: int = 16
    pad_batches: bool = True
    paste_workers: int = 2
    max_faces: int = 8
    bg_tile: int = 400
    max_frames: int = 1000

    def settings(self, precision: str | None = None) -> BatchSettings:
        return BatchSettings(
            batch_size=self.batch_size,
            detect_batch_size=self.detect_batch_size,
            pad_batches=self.pad_batches,
            paste_workers=self.paste_workers,
            precision=check_precision(precision or self.precision),
            max_faces=self.max_faces,
        )

    def validate(self) -> GfpganConfig:
        for name in ("batch_size", "detect_batch_size", "paste_workers", "max_frames"):
            if int(getattr(self, name)) < 1:
                raise InvalidInput(f"{name}={getattr(self, name)}: must be >= 1")
        check_precision(self.precision)
        return self


@dataclass(frozen=True)
class RestoreParams:
    """One request's parameters (see the module docstring)."""

    version: str = "1.4"
    upscale: int = 4
    output_size: int = 0
    background: bool = False
    only_center_face: bool = False
    paste_back: bool = True
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    smooth_landmarks: bool = False
    smooth_radius: int = 0  # 0 with smoothing on -> DEFAULT_SMOOTH_RADIUS
    precision: str | None = None  # None: the runner's

    def validate(self) -> RestoreParams:
        check_version(self.version)
        if self.output_size and not 16 <= self.output_size <= MAX_OUT_SIDE:
            raise InvalidInput(
                f"output_size={self.output_size}: must be 0 (use upscale) or in [16, {MAX_OUT_SIDE}]"
            )
        if not self.output_size and not 1 <= self.upscale <= MAX_UPSCALE:
            raise InvalidInput(f"upscale={self.upscale}: must be in [1, {MAX_UPSCALE}]")
        if not 0 <= self.smooth_radius <= 25:
            raise InvalidInput(f"smooth_radius={self.smooth_radius}: must be in [0, 25]")
        if self.precision is not None:
            check_precision(self.precision)
        return self

    def scale_for(self, h: int, w: int) -> float:
        return self.output_size / max(h, w) if self.output_size else float(self.upscale)

    @property
    def radius(self) -> int:
        return (self.smooth_radius or DEFAULT_SMOOTH_RADIUS) if self.smooth_landmarks else 0


@dataclass(frozen=True)
class RestoreResult:
    frames: np.ndarray  # (N, H', W', 3) uint8 RGB
    faces: list[int]  # faces restored per output frame
    timings: dict[str, float]


class GfpganRunner:
    def __init__(self, cfg: GfpganConfig, models: FaceModels | None = None) -> None:
        if cfg.weights_dir is None:
            cfg = replace(cfg, weights_dir=WeightsConfig.from_env().dir)
        self.cfg = cfg.validate()
        self.device = models.device if models is not None else resolve_device(cfg.device)
        self._models = models
        self._lock = threading.RLock()

    # -- loading -------------------------------------------------------------------------------
    def models(self) -> FaceModels:
        with self._lock:
            if self._models is None:
                self._models = load_face_models(self.cfg.weights_dir, self.device)
            return self._models

    def restorer(self, version: str) -> torch.nn.Module:
        with self._lock:
            return add_restorer(self.models(), self.cfg.weights_dir, version)

    def background(self) -> BackgroundUpsampler:
        with self._lock:
            m = self.models()
            if m.background is None:
                m.background = BackgroundUpsampler.from_weights_dir(
                    self.cfg.weights_dir,
                    self.device,
                    precision=self.cfg.precision,
                    tile=self.cfg.bg_tile,
                    batch_size=self.cfg.batch_size,
                )
                m.ids["realesrgan-x2plus"] = weights_id(require("realesrgan-x2plus", self.cfg.weights_dir))
            return m.background

    def model_id(self, params: RestoreParams) -> str:
        """Loads (and so checks) every weights file `params` needs; WeightsMissing names the fetch."""
        self.restorer(params.version)
        background = params.background and params.paste_back
        if background:
            self.background()
        return self.models().model_id(check_version(params.version), background)

    # -- restoring -----------------------------------------------------------------------------
    def check_frames(self, frames: np.ndarray, params: RestoreParams, context: tuple[int, int]) -> float:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
            raise InvalidInput(f"frames must be (N, H, W, 3) uint8 RGB, got {frames.dtype} {frames.shape}")
        n, h, w = frames.shape[:3]
        if min(context) < 0 or sum(context) >= n:
            raise InvalidInput(f"context {context} leaves no frame to restore in a pack of {n}")
        if n > self.cfg.max_frames:
            raise InvalidInput(
                f"{n} frames in one call: at most {self.cfg.max_frames} (use shorter segments)"
            )
        scale = params.scale_for(h, w)
        h_up, w_up = int(h * scale), int(w * scale)
        if min(h_up, w_up) < 1 or max(h_up, w_up) > MAX_OUT_SIDE:
            raise InvalidInput(
                f"{w}x{h} frames scaled by {scale:g} give {w_up}x{h_up}: must be in [1, {MAX_OUT_SIDE}]"
            )
        return scale

    def restore(
        self,
        frames: np.ndarray,
        params: RestoreParams,
        context: tuple[int, int] = (0, 0),
        detections: list[np.ndarray] | None = None,
    ) -> RestoreResult:
        """Restore `frames` (N, H, W, 3) uint8 RGB; the `context` (before, after) frames are only read."""
        params.validate()
        scale = self.check_frames(frames, params, context)
        plan = FacePlan(scale, params.only_center_face, params.paste_back, params.radius)
        with self._lock:
            models = self.models()
            net = NoisyRestorer(self.restorer(params.version), params.noise, self.device)
            bg = self.background() if params.background and params.paste_back else None
            bgr = np.ascontiguousarray(frames[..., ::-1])
            try:
                out = restore_segment(
                    models, net, bgr, plan, self.cfg.settings(params.precision), context, bg, detections
                )
            except torch.cuda.OutOfMemoryError as exc:
                torch.cuda.empty_cache()
                raise ResourceExhausted(f"GPU out of memory restoring {len(frames)} frames: {exc}") from exc
        if not params.paste_back:
            missing = [i for i, c in enumerate(out.faces) if c != 1]
            if missing:
                raise InvalidInput(
                    f"faces-only output needs exactly one face per frame; frames {missing[:10]} have "
                    f"{[out.faces[i] for i in missing[:10]]} (set only_center_face, or paste back)"
                )
        rgb = (
            np.stack([f[..., ::-1] for f in out.frames])
            if out.frames
            else np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8)
        )
        return RestoreResult(np.ascontiguousarray(rgb), out.faces, out.timings)
