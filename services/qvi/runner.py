"""QVIRunner: k frames between each pair of a clip or segment; uint8 RGB arrays in, arrays out.

No store, gRPC or Ray. Owns the weights (loaded once), the device, the precision and the batching.

Output index rule (input frames i = 0..N-1 of a clip, k in-betweens per pair):
    input frame i           -> output index i * (k + 1)
    in-between j of (i, i+1) -> output index i * (k + 1) + j, j = 1..k, at t = j / (k + 1)
The clip's last frame gets no in-betweens, so a clip of N frames gives (N - 1)(k + 1) + 1 frames at
fps * (k + 1). A segment [s, e) of input frames emits output [s (k + 1), e (k + 1)), or up to
(e - 1)(k + 1) + 1 when it holds the clip's last frame: segments concatenate without gaps or overlaps.
A segment needs context: the frame before (s - 1) whenever s > 0, and min(2, N - e) frames after;
with exactly that context, a pair interpolated in a segment equals the same pair of the whole clip
(quadratic motion inside the clip, linear for the first and last pair, as upstream's demo).

Upstream's demo recomputes the four flows for every t; here every directed flow between neighbours is
estimated once and reused by every t and by both pairs that need it (2 PWC calls per pair, not 4k).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from lihq.config import WeightsConfig
from lihq.errors import InvalidInput, ResourceExhausted, WeightsMissing
from lihq.torchutil import autocast, batched, check_precision, resolve_device
from lihq.weights.registry import get_entry, local_path
from lihq.weights.synth import is_synthetic, weights_id
from services.qvi.checkpoint import load_qvi
from services.qvi.nets import QVI, Flows
from services.qvi.nets.qvi import MEAN

MIN_K, MAX_K = 1, 7
MIN_SIDE = 32  # the refinement UNet pools 5 times
Pair = tuple[int, int]


@dataclass(frozen=True)
class QVIRunnerConfig:
    model_path: Path | None = None  # official-layout model.pt (or a synthetic one); None: the registry's
    device: str = "auto"
    precision: str = "fp32"  # default when a call does not ask: fp32 | bf16 | fp16
    batch_size: int = 4  # images per forward (PWC pairs, and (pair, t) items of the synthesis)
    max_side: int = 4096


@dataclass(frozen=True)
class SegmentPlan:
    """A segment [start, end) of the input timeline with its context (see the module docstring)."""

    start: int
    end: int
    context_before: int
    context_after: int
    k: int

    @property
    def window(self) -> int:
        """Input frames the call needs: segment plus context."""
        return self.end - self.start + self.context_before + self.context_after

    @property
    def out_start(self) -> int:
        return self.start * (self.k + 1)

    @property
    def out_count(self) -> int:
        holds_clip_end = self.context_after == 0
        return (self.end - self.start) * (self.k + 1) - (self.k if holds_clip_end else 0)

    @property
    def out_end(self) -> int:
        return self.out_start + self.out_count


def model_path(weights_dir: Path) -> Path:
    """`<weights_dir>/qvi/model.pt`; WeightsMissing naming `lihq weights fetch qvi` when absent.

    Only model.pt is needed: it holds the PWC-Net weights too (pwc-checkpoint.pt only initialises
    upstream's PWC-Net before model.pt overwrites it).
    """
    path = local_path(get_entry("qvi").files[0], weights_dir)
    if not path.is_file():
        raise WeightsMissing(
            f"QVI weights missing: {path}; run `lihq weights fetch qvi` "
            "(or `lihq weights synthesize qvi --seed 1` for synthetic test weights)",
            weight="qvi",
        )
    return path


def check_k(k: int) -> int:
    if not MIN_K <= k <= MAX_K:
        raise InvalidInput(
            f"k={k}: frames inserted per pair must be in [{MIN_K}, {MAX_K}] (k=1 doubles the fps, 3 gives x4)"
        )
    return k


def plan_segment(start: int, end: int, context_before: int, context_after: int, k: int) -> SegmentPlan:
    """Validate a segment request; InvalidInput with the rule when it cannot be interpolated exactly."""
    check_k(k)
    if start < 0 or end <= start:
        raise InvalidInput(f"segment [{start}, {end}): need 0 <= start < end")
    if context_before != (1 if start > 0 else 0):
        raise InvalidInput(
            f"segment [{start}, {end}): context_before={context_before}; it must be 1 when start > 0 "
            "(the frame before the segment) and 0 at the clip start"
        )
    if not 0 <= context_after <= 2:
        raise InvalidInput(
            f"segment [{start}, {end}): context_after={context_after}; it must be min(2, frames after the "
            "segment): 2 inside a clip, 1 or 0 at its end (0 = the segment holds the clip's last frame)"
        )
    plan = SegmentPlan(start, end, context_before, context_after, k)
    if plan.window < 2:
        raise InvalidInput(f"segment [{start}, {end}) with its context holds {plan.window} frame; need >= 2")
    return plan


def time_steps(k: int) -> list[float]:
    """t of the k in-betweens, computed as upstream's demo does (1 / (k + 1) * j)."""
    return [1.0 / (k + 1) * j for j in range(1, k + 1)]


class QVIRunner:
    def __init__(self, cfg: QVIRunnerConfig) -> None:
        if cfg.batch_size < 1:
            raise InvalidInput(f"batch_size={cfg.batch_size}: must be >= 1")
        self.cfg = cfg
        self.precision = check_precision(cfg.precision)
        self.device = resolve_device(cfg.device)
        if cfg.model_path is None:
            cfg = self.cfg = replace(cfg, model_path=model_path(WeightsConfig.from_env().dir))
        self.model: QVI = load_qvi(cfg.model_path).to(self.device)
        self.model_id = weights_id(cfg.model_path)
        self.synthetic = is_synthetic(cfg.model_path) is not None
        self._mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1)

    # -- public API ---------------------------------------------------------------------------
    def check_frames(self, frames: np.ndarray) -> None:
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4:
            raise InvalidInput("frames must be a uint8 array (N, H, W, 3) of RGB frames")
        n, h, w, c = frames.shape
        if c != 3:
            raise InvalidInput(f"frames must be RGB (N, H, W, 3), got {frames.shape}")
        if n < 2:
            raise InvalidInput(f"interpolation needs at least 2 frames, got {n}")
        if not (MIN_SIDE <= h <= self.cfg.max_side and MIN_SIDE <= w <= self.cfg.max_side):
            raise InvalidInput(
                f"frame size {w}x{h}: width and height must be in [{MIN_SIDE}, {self.cfg.max_side}]"
            )

    def interpolate_clip(self, frames: np.ndarray, k: int, precision: str | None = None) -> np.ndarray:
        """A whole clip (N, H, W, 3) -> ((N - 1)(k + 1) + 1, H, W, 3) uint8 RGB."""
        self.check_frames(frames)
        plan = plan_segment(0, int(frames.shape[0]), 0, 0, k)
        return self.interpolate_segment(frames, plan, precision)

    def interpolate_segment(
        self, frames: np.ndarray, plan: SegmentPlan, precision: str | None = None
    ) -> np.ndarray:
        """frames: the plan's window [start - context_before, end + context_after), uint8 RGB.

        Returns (plan.out_count, H, W, 3) uint8: output indices [plan.out_start, plan.out_end).
        """
        self.check_frames(frames)
        if frames.shape[0] != plan.window:
            raise InvalidInput(
                f"segment [{plan.start}, {plan.end}) with context {plan.context_before}/{plan.context_after} "
                f"needs {plan.window} frames, got {frames.shape[0]}"
            )
        precision = check_precision(precision or self.precision)
        try:
            return self._run(frames, plan, precision)
        except torch.OutOfMemoryError as exc:
            raise ResourceExhausted(
                f"out of GPU memory interpolating {frames.shape[2]}x{frames.shape[1]} frames "
                f"(batch {self.cfg.batch_size}); retry later or lower the batch size"
            ) from exc

    # -- internals ----------------------------------------------------------------------------
    def _run(self, frames: np.ndarray, plan: SegmentPlan, precision: str) -> np.ndarray:
        n_local, first, step = frames.shape[0], plan.context_before, plan.k + 1
        own = range(first, first + plan.end - plan.start)  # the segment's frames, window-local
        out = np.empty((plan.out_count, *frames.shape[1:]), np.uint8)
        for p in own:
            out[(p - first) * step] = frames[p]  # originals pass through unchanged
        pairs = [p for p in own if p + 1 < n_local]
        if not pairs:
            return out
        with torch.inference_mode(), autocast(self.device, precision):
            x = self.to_model_input(frames)
            flows = self.neighbour_flows(x, needed_flows(pairs, n_local))
            for p, j, img in self._synthesize(x, flows, pairs, n_local, plan.k):
                out[(p - first) * step + j] = img
        return out

    def to_model_input(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) RGB -> (N, 3, H, W) float32 RGB in [0, 1] minus MEAN, on the device."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2)
        return x.float() / 255.0 - self._mean

    def _to_uint8(self, frame: torch.Tensor) -> np.ndarray:
        img = (frame.float() + self._mean).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        return img.permute(0, 2, 3, 1).cpu().numpy()

    def neighbour_flows(self, x: torch.Tensor, wanted: Sequence[Pair]) -> dict[Pair, torch.Tensor]:
        """Flows a -> b (1, 2, H, W) float32 for each wanted (a, b), batched; each frame's pyramid is
        computed once and dropped once no later pair needs it."""
        flownet = self.model.flownet
        size = (x.shape[2], x.shape[3])
        order = sorted(wanted, key=lambda ab: (min(ab), max(ab), ab))
        pyramids: dict[int, list[torch.Tensor]] = {}
        out: dict[Pair, torch.Tensor] = {}
        for lo, hi in batched(len(order), self.cfg.batch_size):
            chunk = order[lo:hi]
            missing = sorted({i for ab in chunk for i in ab} - pyramids.keys())
            for m0, m1 in batched(len(missing), self.cfg.batch_size):
                idx = missing[m0:m1]
                levels = flownet.features(x[idx])
                for j, i in enumerate(idx):
                    pyramids[i] = [lvl[j : j + 1] for lvl in levels]
            first = [torch.cat([pyramids[a][lvl] for a, _ in chunk]) for lvl in range(6)]
            second = [torch.cat([pyramids[b][lvl] for _, b in chunk]) for lvl in range(6)]
            flow = flownet.flow_from_features(first, second, size)
            out.update({ab: flow[j : j + 1] for j, ab in enumerate(chunk)})
            keep = min((min(ab) for ab in order[hi:]), default=None)
            for i in [i for i in pyramids if keep is None or i < keep]:
                del pyramids[i]
        return out

    def _synthesize(
        self, x: torch.Tensor, flows: dict[Pair, torch.Tensor], pairs: list[int], n: int, k: int
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """(pair, j, frame uint8 (H, W, 3)) for every in-between; quadratic and linear pairs are
        batched separately (a batch shares one motion model)."""
        items = [(p, j, t) for p in pairs for j, t in enumerate(time_steps(k), start=1)]
        for quadratic in (True, False):
            group = [it for it in items if is_quadratic(it[0], n) == quadratic]
            for lo, hi in batched(len(group), self.cfg.batch_size):
                chunk = group[lo:hi]
                ps = [p for p, _, _ in chunk]
                fl = Flows(
                    _stack(flows, [(p, p - 1) for p in ps]) if quadratic else None,
                    _stack(flows, [(p, p + 1) for p in ps]),
                    _stack(flows, [(p + 1, p) for p in ps]),
                    _stack(flows, [(p + 1, p + 2) for p in ps]) if quadratic else None,
                )
                t = torch.tensor([t for _, _, t in chunk], dtype=torch.float64)
                imgs = self._to_uint8(self.model.synthesize(x[ps], x[[p + 1 for p in ps]], fl, t))
                for (p, j, _), img in zip(chunk, imgs, strict=True):
                    yield p, j, img


def is_quadratic(p: int, n: int) -> bool:
    """Pair (p, p + 1) of a window of n frames has both neighbours (p - 1 and p + 2)."""
    return p >= 1 and p + 2 < n


def needed_flows(pairs: Sequence[int], n: int) -> list[Pair]:
    """Directed neighbour flows the pairs need: F(p->p+1), F(p+1->p), and for quadratic pairs
    F(p->p-1), F(p+1->p+2). Shared ones are listed once."""
    want: set[Pair] = set()
    for p in pairs:
        want |= {(p, p + 1), (p + 1, p)}
        if is_quadratic(p, n):
            want |= {(p, p - 1), (p + 1, p + 2)}
    return sorted(want)


def _stack(flows: dict[Pair, torch.Tensor], keys: list[Pair]) -> torch.Tensor:
    return torch.cat([flows[ab] for ab in keys])
