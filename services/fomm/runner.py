"""FommRunner: loads FOMM checkpoints once, owns device / precision / batching; arrays in, arrays out.

No store, no gRPC, no Ray (docs/architecture.md §2). The servicer calls:

- `prepare(source, driving, checkpoint, initial_index=..., start=...)` -> MotionGlobals: keypoints
  of the source and of the initial driving frame (batch 1 each, as upstream's make_animation);
- `animate(source, driving, globals, AnimateSpec(mode, adapt_scale, checkpoint, start, precision))`
  -> (N, 256, 256, 3) uint8 RGB frames, upstream's per-frame result computed in batches (the source
  is encoded once per call, the keypoint globals are never recomputed).

Checkpoints ("vox", "vox-adv") are loaded on first use and kept; forwards are serialized per runner
(one replica = one model copy per checkpoint, bounded activation memory).

Batching is exact by construction: frames are grouped on the output timeline in blocks of
`batch_size` aligned to multiples of it (`start` = timeline index of driving[0]), and a partial
block (at a segment's edge) is padded to `batch_size` with copies of its edge frames, so timeline
frame t always goes through the nets at position t % batch_size of a batch of the same shape,
whichever segment it arrives in: per-frame results are then bit-identical on CPU (measured: they
are not between batch shapes 1 and 2). Segments whose bounds are multiples of `batch_size` need no
padding. With `aligned_batches=False` blocks are plain consecutive runs (no padding, results within
~1e-6 of the aligned ones).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lihq.config import WeightsConfig
from lihq.errors import FailedPrecondition, InvalidInput, ResourceExhausted
from lihq.torchutil import autocast, check_precision, resolve_device
from lihq.weights import is_synthetic, require, weights_id
from services.fomm import keypoints as motion
from services.fomm.checkpoint import load_nets
from services.fomm.keypoints import LandmarkFn, Mode, MotionGlobals
from services.fomm.nets import (
    VOX_256,
    DenseMotion,
    FommConfig,
    GeneratorOutput,
    Keypoints,
    KPDetector,
    OcclusionAwareGenerator,
)

# checkpoint name (AnimateRequest.checkpoint) -> weights registry entry
CHECKPOINTS: dict[str, str] = {"vox": "fomm", "vox-adv": "fomm-adv"}
DEFAULT_CHECKPOINT = "vox"


@dataclass(frozen=True)
class FommRunnerConfig:
    """Runtime settings (the architecture is `arch`).

    align_corners: what F.grid_sample is told. False (default) = torch >= 1.3 and the vectors;
    True = the torch 1.0 behaviour the official checkpoints were trained with.
    """

    device: str = "auto"
    batch_size: int = 25  # divides the default 50-frame segments: no edge padding
    precision: str = "fp32"
    channels_last: bool = False
    align_corners: bool = False
    aligned_batches: bool = True
    resize_inputs: bool = False  # False: frames must already be frame_size² (else InvalidInput)
    max_frames: int = 2000
    arch: FommConfig = field(default_factory=lambda: VOX_256)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.batch_size < 1:
            raise InvalidInput(f"batch_size={self.batch_size}: must be >= 1")


@dataclass(frozen=True)
class AnimateSpec:
    """How to animate one run of driving frames.

    start: timeline index of driving[0] (batch alignment); precision: None = the runner's default.
    """

    mode: Mode = Mode.RELATIVE
    adapt_scale: bool = True
    checkpoint: str = DEFAULT_CHECKPOINT
    start: int = 0
    precision: str | None = None


@dataclass(frozen=True)
class LoadedFomm:
    kp_detector: KPDetector
    generator: OcclusionAwareGenerator
    model_id: str  # "synthetic:<seed>" or "sha256:<hex>"
    path: Path
    synthetic: bool


def aligned_blocks(start: int, n: int, size: int, aligned: bool = True) -> Iterator[tuple[int, int]]:
    """[s, e) index ranges into a run of n frames whose first sits at timeline index `start`.

    aligned: blocks break at timeline multiples of `size`; else consecutive runs of `size`.
    """
    if not aligned:
        yield from ((s, min(n, s + size)) for s in range(0, n, size))
        return
    s = 0
    while s < n:
        e = min(n, s + size - (start + s) % size)
        yield s, e
        s = e


class FommRunner:
    def __init__(
        self,
        cfg: FommRunnerConfig | None = None,
        weights: WeightsConfig | Path | str | None = None,
        paths: Mapping[str, str | Path] | None = None,
        landmarks: LandmarkFn | None = None,
    ) -> None:
        """`weights`: the weights dir (registry layout); `paths`: explicit checkpoint files by name
        ("vox", "vox-adv"), which take precedence; `landmarks`: optional face-landmark function for
        find_best_frame (none ships with LIHQ)."""
        self.cfg = cfg or FommRunnerConfig()
        self.device = resolve_device(self.cfg.device)
        self.weights = weights if weights is not None else WeightsConfig.from_env()
        self.paths = {k: Path(v) for k, v in (paths or {}).items()}
        unknown = sorted(set(self.paths) - set(CHECKPOINTS))
        if unknown:
            raise InvalidInput(f"unknown FOMM checkpoint names {unknown}; known: {sorted(CHECKPOINTS)}")
        self.landmarks = landmarks
        self._models: dict[str, LoadedFomm] = {}
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one forward at a time per replica: bounded memory

    # -- weights ------------------------------------------------------------------------------
    @staticmethod
    def checkpoint_name(name: str) -> str:
        name = name or DEFAULT_CHECKPOINT
        if name not in CHECKPOINTS:
            raise InvalidInput(f"checkpoint {name!r}: expected one of {', '.join(CHECKPOINTS)}")
        return name

    def checkpoint_path(self, name: str) -> Path:
        """The file for checkpoint `name`: an explicit path, else the registry (WeightsMissing)."""
        name = self.checkpoint_name(name)
        if name in self.paths:
            path = self.paths[name]
            if not path.is_file():
                raise FailedPrecondition(
                    f"FOMM checkpoint {name!r}: {path} (from the app args) does not exist; fix the path or "
                    f"run `lihq weights fetch {CHECKPOINTS[name]}` and drop the explicit path"
                )
            return path
        found = require(CHECKPOINTS[name], self.weights)
        assert isinstance(found, Path)
        return found

    def model(self, name: str = DEFAULT_CHECKPOINT) -> LoadedFomm:
        """The loaded nets of checkpoint `name` (loaded on first use, then kept)."""
        name = self.checkpoint_name(name)
        with self._load_lock:
            if name not in self._models:
                self._models[name] = self._load(self.checkpoint_path(name))
            return self._models[name]

    def _load(self, path: Path) -> LoadedFomm:
        kp, gen = load_nets(path, self.cfg.arch, self.cfg.align_corners)
        fmt = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        kp = kp.to(self.device, memory_format=fmt).eval()
        gen = gen.to(self.device, memory_format=fmt).eval()
        return LoadedFomm(kp, gen, weights_id(path), path, is_synthetic(path) is not None)

    def model_id(self, name: str = DEFAULT_CHECKPOINT) -> str:
        return self.model(name).model_id

    # -- helpers ------------------------------------------------------------------------------
    def check_frames(self, frames: np.ndarray, what: str) -> None:
        size = self.cfg.arch.frame_size
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InvalidInput(
                f"{what}: expected (N, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}"
            )
        if frames.shape[0] == 0:
            raise InvalidInput(f"{what}: no frames")
        if frames.shape[0] > self.cfg.max_frames:
            raise InvalidInput(f"{what}: {frames.shape[0]} frames; at most {self.cfg.max_frames} per call")
        if not self.cfg.resize_inputs and frames.shape[1:3] != (size, size):
            raise InvalidInput(
                f"{what}: frames are {frames.shape[2]}x{frames.shape[1]}; FOMM vox-256 takes {size}x{size} "
                f"frames (crop the face / cut the reference video at {size}x{size})"
            )

    def _to_device(self, frames: np.ndarray) -> torch.Tensor:
        x = motion.to_model_input(frames, self.cfg.arch.frame_size).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    @contextlib.contextmanager
    def _compute(self, precision: str | None) -> Iterator[None]:
        """Serialize forwards, no grad, autocast; a CUDA OOM becomes ResourceExhausted (retryable)."""
        prec = check_precision(precision or self.cfg.precision)
        try:
            with self._run_lock, torch.inference_mode(), autocast(self.device, prec):
                yield
        except torch.OutOfMemoryError as exc:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise ResourceExhausted(
                f"FOMM: out of {self.device} memory ({exc}); retry or lower batch_size"
            ) from exc

    # -- globals ------------------------------------------------------------------------------
    def best_frame(self, source: np.ndarray, driving: np.ndarray) -> int:
        if self.landmarks is None:
            raise FailedPrecondition(
                "find_best_frame needs a face-landmark detector (upstream uses face_alignment, whose "
                "weights LIHQ does not ship) and none is configured; pass initial_frame instead"
            )
        return motion.find_best_frame(source, list(driving), self.landmarks)

    def prepare(
        self,
        source: np.ndarray,
        driving: np.ndarray,
        checkpoint: str = DEFAULT_CHECKPOINT,
        *,
        initial_index: int = 0,
        start: int = 0,
        find_best: bool = False,
    ) -> MotionGlobals:
        """Globals for a render: source (H, W, 3) uint8 RGB; driving (N, H, W, 3) holds the initial
        frame at `initial_index` (or the best-aligned one when find_best); `start` = timeline index
        of driving[0]."""
        self.check_frames(source[None], "source")
        self.check_frames(driving, "driving")
        if find_best:
            initial_index = self.best_frame(source, driving)
        if not 0 <= initial_index < len(driving):
            raise InvalidInput(f"initial_frame {initial_index}: the driving pack has {len(driving)} frames")
        m = self.model(checkpoint)
        with self._compute("fp32"):
            kp_source = m.kp_detector(self._to_device(source[None]))
            kp_initial = m.kp_detector(self._to_device(driving[initial_index : initial_index + 1]))
        digest = motion.frame_digest(source)
        return motion.make_globals(kp_source, kp_initial, start + initial_index, m.model_id, digest)

    # -- animation ----------------------------------------------------------------------------
    def _check_globals(self, g: MotionGlobals, source: np.ndarray, m: LoadedFomm) -> None:
        if g.model_id != m.model_id:
            raise InvalidInput(
                f"globals were prepared with model {g.model_id}, this call uses {m.model_id}: "
                "run PrepareMotion with the same checkpoint"
            )
        if g.source_digest != motion.frame_digest(source):
            raise InvalidInput(
                "globals were prepared for another source image: run PrepareMotion for this source"
            )

    def _padded(self, frames: np.ndarray, first: int) -> tuple[np.ndarray, int]:
        """(batch, offset): aligned mode puts timeline frame t at position t % batch_size of a full
        batch (edge copies around it); `offset` = position of frames[0]."""
        bs, n = self.cfg.batch_size, len(frames)
        if not self.cfg.aligned_batches or n == bs:
            return frames, 0
        lead = first % bs
        parts = [np.repeat(frames[:1], lead, axis=0), frames, np.repeat(frames[-1:], bs - lead - n, axis=0)]
        return np.concatenate(parts), lead

    def iter_outputs(
        self,
        source: np.ndarray,
        driving: np.ndarray,
        g: MotionGlobals,
        spec: AnimateSpec = AnimateSpec(),
        with_deformed: bool = False,
    ) -> Iterator[tuple[int, int, Keypoints, Keypoints, GeneratorOutput]]:
        """(s, e, kp_driving, kp_norm, generator output) per batch of driving[s:e] (padding dropped).

        source (H, W, 3) and driving (N, H, W, 3) uint8 RGB; `g` from `prepare` for this source.
        """
        self.check_frames(source[None], "source")
        self.check_frames(driving, "driving")
        m = self.model(spec.checkpoint)
        self._check_globals(g, source, m)
        scale = motion.movement_scale(g, spec.adapt_scale) if spec.mode is Mode.RELATIVE else 1.0
        bs, aligned = self.cfg.batch_size, self.cfg.aligned_batches
        with self._compute(spec.precision):
            kp_source, kp_initial = g.keypoints(self.device)
            enc = m.generator.encode(self._to_device(source[None]))
            for s, e in aligned_blocks(spec.start, len(driving), bs, aligned):
                batch, at = self._padded(driving[s:e], spec.start + s)
                kp_driving = m.kp_detector(self._to_device(batch))
                kp_norm = motion.normalize(kp_driving, kp_source, kp_initial, spec.mode, scale)
                out = m.generator.animate(enc, kp_norm, kp_source, with_deformed=with_deformed)
                rows = slice(at, at + e - s)
                yield s, e, _rows(kp_driving, rows), _rows(kp_norm, rows), _rows_output(out, rows)

    def animate(
        self, source: np.ndarray, driving: np.ndarray, g: MotionGlobals, spec: AnimateSpec = AnimateSpec()
    ) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB animated frames (S = frame_size), rounded as upstream's img_as_ubyte."""
        size = self.cfg.arch.frame_size
        frames = np.empty((len(driving), size, size, 3), dtype=np.uint8)
        for s, e, _, _, out in self.iter_outputs(source, driving, g, spec):
            frames[s:e] = motion.to_uint8(out.prediction).cpu().numpy()
        return frames

    def animate_float(
        self, source: np.ndarray, driving: np.ndarray, g: MotionGlobals, spec: AnimateSpec = AnimateSpec()
    ) -> np.ndarray:
        """(N, S, S, 3) float32 predictions in (0, 1), before rounding (upstream's make_animation)."""
        parts = [
            out.prediction.float().permute(0, 2, 3, 1).cpu().numpy()
            for *_, out in self.iter_outputs(source, driving, g, spec)
        ]
        return np.concatenate(parts)


def _rows(kp: Keypoints, rows: slice) -> Keypoints:
    return Keypoints(kp.value[rows], None if kp.jacobian is None else kp.jacobian[rows])


def _rows_output(out: GeneratorOutput, rows: slice) -> GeneratorOutput:
    dense = DenseMotion(*(None if t is None else t[rows] for t in out.motion))
    deformed = None if out.deformed is None else out.deformed[rows]
    return GeneratorOutput(out.prediction[rows], dense, deformed)
