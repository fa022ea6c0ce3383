"""InterpolationService logic: fetch frame packs -> QVIRunner -> put one output pack (docs/architecture.md §3).

Transport-free: deployment.py subclasses it for Ray Serve; `lihq.grpc.server.serve_plain` hosts it on
a plain grpc.aio server. The output key is content-addressed (stage, model id, k, precision, segment,
input pack digests): a repeated call is a cache hit and a retry rewrites the same object.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lihq import precision as precisions
from lihq.cache import cache_key, stage_digest
from lihq.errors import Internal, InvalidInput, LihqError
from lihq.framepack import HEADER_SIZE, MAGIC, FramePack, pack_frames, unpack_frames
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.grpc.health import HealthMixin
from lihq.log import stage_logger
from lihq.storage.base import ObjectStore
from lihq.v1 import common_pb2, interpolation_pb2
from services.qvi.runner import QVIRunner, SegmentPlan, plan_segment

STAGE = "qvi"
_PACK_TYPE = "application/x-lihq-framepack"
_MAX_PACKS = 8


def window_frames(packs: list[FramePack], lo: int, hi: int) -> tuple[np.ndarray, float]:
    """Frames [lo, hi) of the input timeline gathered from packs placed by their `start`, + the fps.

    InvalidInput when packs differ in size or fps, disagree on a frame, or leave a frame uncovered.
    """
    if not packs:
        raise InvalidInput("no frame packs given: `frames` needs the segment's frames and its context")
    first = packs[0]
    got: dict[int, np.ndarray] = {}
    for i, p in enumerate(packs):
        if (p.width, p.height) != (first.width, first.height) or abs(p.fps - first.fps) > 1e-9:
            raise InvalidInput(
                f"frame pack {i} is {p.width}x{p.height}@{p.fps:g}, pack 0 is "
                f"{first.width}x{first.height}@{first.fps:g}: all packs must share size and fps"
            )
        for idx in range(max(lo, p.start), min(hi, p.end)):
            frame = p.frames[idx - p.start]
            if idx in got and not np.array_equal(got[idx], frame):
                raise InvalidInput(f"frame {idx} is given by two packs with different pixels")
            got.setdefault(idx, frame)
    missing = [i for i in range(lo, hi) if i not in got]
    if missing:
        covered = ", ".join(f"[{p.start}, {p.end})" for p in packs)
        raise InvalidInput(
            f"frames {missing[:8]} of the window [{lo}, {hi}) are in no pack (packs cover {covered}); "
            "send the segment's frames with 1 frame before (when start > 0) and min(2, frames left) after"
        )
    return np.stack([got[i] for i in range(lo, hi)]), first.fps


class InterpolationServicer(HealthMixin):
    """Give a ready `runner`, or a `loader` that builds one: it is called on first use (and again on
    later calls while it fails, e.g. until `lihq weights fetch qvi` has put the weights in place)."""

    def __init__(
        self,
        store: ObjectStore,
        runner: QVIRunner | None = None,
        loader: Callable[[], QVIRunner] | None = None,
    ) -> None:
        if runner is None and loader is None:
            raise ValueError("InterpolationServicer needs a runner or a loader")
        self.store = store
        self._runner_obj = runner
        self._loader = loader
        self._lock = threading.Lock()
        self._compute = threading.Lock()  # one model call at a time per replica: bounded GPU memory

    @property
    def runner(self) -> QVIRunner:
        if self._runner_obj is None:
            with self._lock:
                if self._runner_obj is None:
                    assert self._loader is not None
                    self._runner_obj = self._loader()
        return self._runner_obj

    def warm_up(self) -> None:
        """Load the runner now; a LihqError (missing or bad weights) is logged and raised per call."""
        try:
            runner = self.runner
        except LihqError as exc:
            stage_logger(STAGE).warning("QVI not loaded yet: %s", exc.message)
            return
        if runner.synthetic:
            stage_logger(STAGE).warning(
                "QVI runs on SYNTHETIC weights (%s): outputs are not real", runner.model_id
            )

    @rpc_method(interpolation_pb2.InterpolateResponse)
    async def Interpolate(  # noqa: N802
        self, request: interpolation_pb2.InterpolateRequest, grpc_context: Any = None
    ) -> interpolation_pb2.InterpolateResponse:
        return await asyncio.to_thread(self._interpolate, request)

    def _plan(self, req: interpolation_pb2.InterpolateRequest) -> tuple[SegmentPlan, str | None]:
        seg = req.segment
        plan = plan_segment(seg.start, seg.end, seg.context_before, seg.context_after, req.k)
        asked = precisions.from_proto(req.precision, None)  # None: the runner's default
        if not 1 <= len(req.frames) <= _MAX_PACKS:
            raise InvalidInput(
                f"frames: {len(req.frames)} frame packs given; send 1 to {_MAX_PACKS} (the segment and its context)"
            )
        return plan, asked

    def _interpolate(
        self, req: interpolation_pb2.InterpolateRequest
    ) -> interpolation_pb2.InterpolateResponse:
        t0 = time.perf_counter()
        plan, asked = self._plan(req)
        precision = asked or self.runner.precision
        digests = [refs.object_digest(self.store, r, f"frames[{i}]") for i, r in enumerate(req.frames)]
        params = {
            "k": plan.k,
            "precision": precision,
            "segment": [plan.start, plan.end, plan.context_before, plan.context_after],
        }
        digest = stage_digest(STAGE, self.runner.model_id, params, digests)
        key = cache_key(STAGE, digest, f"seg_{plan.out_start:06d}_{plan.out_end:06d}.lfp")
        log = stage_logger(STAGE, render_id=req.ctx.render_id, segment=req.segment.index)
        hit = self.store.exists(key)
        if hit:
            fps = self._cached_fps(key)
        else:
            packs = [
                unpack_frames(refs.fetch_bytes(self.store, r, f"frames[{i}]")[0])
                for i, r in enumerate(req.frames)
            ]
            lo = plan.start - plan.context_before
            window, in_fps = window_frames(packs, lo, plan.end + plan.context_after)
            del packs
            with self._compute:
                out = self.runner.interpolate_segment(window, plan, precision)
            fps = in_fps * (plan.k + 1)
            self.store.put_bytes(key, pack_frames(out, fps=fps, start=plan.out_start), _PACK_TYPE)
        log.info(
            "segment [%d, %d) k=%d -> output [%d, %d) at %g fps (%s)",
            plan.start, plan.end, plan.k, plan.out_start, plan.out_end, fps, "cached" if hit else "new",
        )  # fmt: skip
        return interpolation_pb2.InterpolateResponse(
            pack=refs.to_ref(self.store, self.store.stat(key)),
            output=common_pb2.Segment(index=req.segment.index, start=plan.out_start, end=plan.out_end),
            fps=fps,
            metrics=self._metrics(t0, plan, hit, precision),
        )

    def _cached_fps(self, key: str) -> float:
        """The fps in a stored pack's header, read from its first bytes only (lihq.framepack layout
        v1: magic at 0, fps float64 at offset 16)."""
        head = next(self.store.iter_chunks(key, HEADER_SIZE), b"")
        if len(head) < HEADER_SIZE or not head.startswith(MAGIC):
            raise Internal(f"cached output {key} is not a frame pack")
        return float(struct.unpack_from("<d", head, 16)[0])

    def _metrics(self, t0: float, plan: SegmentPlan, hit: bool, precision: str) -> common_pb2.StageMetrics:
        wall = time.perf_counter() - t0
        made = plan.out_count - (plan.end - plan.start)  # interpolated frames
        extra = {"interpolated_frames": float(made), "k": float(plan.k)}
        if made and not hit:
            extra["s_per_interpolated_frame"] = wall / made
        return common_pb2.StageMetrics(
            wall_s=wall,
            frames=plan.out_count,
            cache_hit=hit,
            model_id=self.runner.model_id,
            device=f"{self.runner.device} {precision}",
            extra=extra,
        )
