"""ModnetRunner: frames in, alpha mattes out (MODNet loaded once; device, precision, batching here).

Preprocessing and output follow upstream's image demo (ZHKKKe/MODNet @ 28165a4,
demo/image_matting/colab/inference.py L62-104) for every frame:

1. uint8 RGB -> float32 x/255 -> (x - 0.5) / 0.5, i.e. [-1, 1];
2. network size from the ref-size rule (`network_size`): when the long side is below `ref_size` or
   the short side above it, the short side becomes `ref_size` and the long side
   int(long / short * ref_size); otherwise the size is kept; then both sides are rounded DOWN to a
   multiple of 32;
3. `F.interpolate(mode="area")` to that size, `MODNet(x, inference=True)`, area-resize the matte back
   to the frame's size;
4. uint8 output is `(matte * 255)` truncated (upstream's `astype('uint8')`), not rounded.

All frames of one call share one size (a frame pack), so they run as batches of `batch_size`; MODNet
in eval mode normalises each sample on its own (InstanceNorm halves), so batching does not change a
frame's matte. No store, no gRPC, no Ray.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lihq.errors import InvalidInput, ResourceExhausted
from lihq.torchutil import autocast, batched, check_precision, maybe_compile, resolve_device
from lihq.weights.synth import is_synthetic, weights_id
from services.modnet.checkpoint import load_modnet
from services.modnet.nets import MODNet

log = logging.getLogger("lihq.modnet")

REF_SIZE = 512  # upstream's ref_size
STRIDE = 32  # the network's total stride: input sides must be multiples of it


@dataclass(frozen=True)
class ModnetConfig:
    """Runtime settings of the runner (architecture settings live in the nets)."""

    device: str = "auto"
    precision: str = "fp32"  # fp32 | fp16 | bf16 (autocast on CUDA; CPU runs fp32 for fp16)
    batch_size: int = 16
    ref_size: int = REF_SIZE
    max_side: int = 4096  # largest network-input side accepted (guards extreme aspect ratios)
    channels_last: bool = False  # NHWC memory format (faster convolutions on recent GPUs)
    compile: bool = False  # torch.compile the network (GPU throughput; first call compiles)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.batch_size < 1:
            raise InvalidInput(f"batch_size={self.batch_size}: must be >= 1")
        if self.ref_size < STRIDE:
            raise InvalidInput(f"ref_size={self.ref_size}: must be >= {STRIDE}")


def network_size(height: int, width: int, ref_size: int = REF_SIZE) -> tuple[int, int]:
    """(rh, rw): the network input size for a height x width frame, by upstream's ref-size rule."""
    if max(height, width) < ref_size or min(height, width) > ref_size:
        if width >= height:
            rh, rw = ref_size, int(width / height * ref_size)
        else:
            rh, rw = int(height / width * ref_size), ref_size
    else:
        rh, rw = height, width
    return rh - rh % STRIDE, rw - rw % STRIDE


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [-1, 1], as ToTensor + Normalize(0.5, 0.5)."""
    x = frames.permute(0, 3, 1, 2).to(torch.float32).div(255)
    return x.sub(0.5).div(0.5)


def to_uint8(matte: torch.Tensor) -> torch.Tensor:
    """[0, 1] float mattes -> uint8 by truncation: upstream's `(matte * 255).astype('uint8')`."""
    return (matte.to(torch.float32) * 255).to(torch.uint8)


class ModnetRunner:
    """MODNet on one device. `matte` / `matte_uint8`: (N, H, W, 3) uint8 RGB -> (N, H, W) mattes."""

    def __init__(self, model: MODNet, cfg: ModnetConfig | None = None, model_id: str = "unknown") -> None:
        self.cfg = cfg or ModnetConfig()
        self.device = resolve_device(self.cfg.device)
        self.model_id = model_id
        self.model = model.eval().to(self.device)
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net: Callable[..., tuple] = self.model
        self.net = maybe_compile(self.model, self.cfg.compile)

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: ModnetConfig | None = None) -> ModnetRunner:
        """Load the official-layout checkpoint at `path` (WeightsMissing / WrongCheckpoint on problems)."""
        info = is_synthetic(path)
        if info is not None:
            log.warning(
                "MODNet weights %s are SYNTHETIC (seed %s): mattes are meaningless", path, info["seed"]
            )
        return cls(load_modnet(path), cfg, weights_id(path))

    # -- network level ------------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor, inference: bool = True, precision: str | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """MODNet on an already-normalised (B, 3, H, W) batch; outputs come back as float32 on CPU."""
        x = self.prepare(x.to(self.device))
        with torch.inference_mode(), autocast(self.device, precision or self.cfg.precision):
            outs = self.net(x, inference)
        return tuple(None if o is None else o.float().cpu() for o in outs)  # type: ignore[return-value]

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # -- frames -------------------------------------------------------------------------------
    def check_frames(self, frames: np.ndarray) -> tuple[int, int]:
        """Validate (N, H, W, 3) uint8 RGB frames; return the network size (rh, rw)."""
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
            raise InvalidInput("frames must be a uint8 numpy array")
        if frames.ndim != 4 or frames.shape[3] != 3:
            raise InvalidInput(f"frames must have shape (N, H, W, 3) (RGB), got {frames.shape}")
        h, w = frames.shape[1:3]
        rh, rw = network_size(h, w, self.cfg.ref_size)
        if rh < STRIDE or rw < STRIDE:
            raise InvalidInput(
                f"frames of {w}x{h} give a network input of {rw}x{rh}: both sides must reach {STRIDE} "
                f"(frames too small or too elongated for ref size {self.cfg.ref_size})"
            )
        if max(rh, rw) > self.cfg.max_side:
            raise InvalidInput(
                f"frames of {w}x{h} give a network input of {rw}x{rh}, above the {self.cfg.max_side} "
                "limit: the aspect ratio is too extreme for matting"
            )
        return rh, rw

    def preprocess(self, frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """(n, H, W, 3) uint8 -> (n, 3, rh, rw) float32 network input on the device."""
        x = normalise(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device))
        if tuple(x.shape[2:]) != size:
            x = F.interpolate(x, size=size, mode="area")
        return x

    def _matte_batch(self, frames: np.ndarray, size: tuple[int, int], precision: str) -> torch.Tensor:
        """(n, H, W) float32 mattes on the device for one batch of frames."""
        h, w = frames.shape[1:3]
        x = self.prepare(self.preprocess(frames, size))
        with torch.inference_mode(), autocast(self.device, precision):
            matte = self.net(x, True)[2]
        matte = matte.float()
        if tuple(matte.shape[2:]) != (h, w):
            matte = F.interpolate(matte, size=(h, w), mode="area")
        return matte[:, 0]

    def _run(
        self, frames: np.ndarray, precision: str | None, convert: Callable[[torch.Tensor], torch.Tensor]
    ) -> np.ndarray:
        size = self.check_frames(frames)
        precision = check_precision(precision or self.cfg.precision)
        outs = []
        try:
            with torch.inference_mode():
                for s, e in batched(len(frames), self.cfg.batch_size):
                    outs.append(convert(self._matte_batch(frames[s:e], size, precision)).cpu().numpy())
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise ResourceExhausted(
                f"GPU out of memory matting {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} "
                f"in batches of {self.cfg.batch_size}; retry later or lower batch_size"
            ) from exc
        h, w = frames.shape[1:3]
        dtype = outs[0].dtype if outs else np.float32
        return np.concatenate(outs) if outs else np.empty((0, h, w), dtype)

    def matte(self, frames: np.ndarray, precision: str | None = None) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> (N, H, W) float32 alpha in [0, 1] (upstream pipeline, float)."""
        return self._run(frames, precision, lambda m: m)

    def matte_uint8(self, frames: np.ndarray, precision: str | None = None) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> (N, H, W) uint8 alpha, truncated like upstream's PNG output."""
        return self._run(frames, precision, to_uint8)
