"""MotionService logic: fetch objects -> FommRunner -> put objects (docs/architecture.md §3).

Transport-free: the Ray Serve deployment (deployment.py) subclasses this, and `lihq.grpc.server`
can host it on a plain grpc.aio server. Outputs are content-addressed by the model id (weights
sha256 or `synthetic:<seed>`), the parameters and the input digests:

    cache/fomm/<digest>/globals.npz               PrepareMotion
    cache/fomm/<digest>/seg_<start>_<end>.lfp     Animate (a frame pack)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np

from lihq import precision as precisions
from lihq.cache import cache_key, stage_digest
from lihq.errors import InvalidInput
from lihq.framepack import FramePack, pack_frames, unpack_frames
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.grpc.health import HealthMixin
from lihq.log import stage_logger
from lihq.storage.base import ObjectStore
from lihq.v1 import common_pb2, motion_pb2
from services.fomm.keypoints import Mode, MotionGlobals
from services.fomm.runner import AnimateSpec, FommRunner

STAGE = "fomm"
_MODES = {
    motion_pb2.KEYPOINT_MODE_UNSPECIFIED: Mode.RELATIVE,
    motion_pb2.KEYPOINT_MODE_RELATIVE: Mode.RELATIVE,
    motion_pb2.KEYPOINT_MODE_ABSOLUTE: Mode.ABSOLUTE,
}


def segment_range(seg: common_pb2.Segment, pack: FramePack) -> tuple[int, int]:
    """The timeline range [start, end) to render: the segment's, inside the pack; unset: the pack."""
    if seg.end == 0 and seg.start == 0:
        return pack.start, pack.end
    if not (0 <= seg.start < seg.end):
        raise InvalidInput(f"segment [{seg.start}, {seg.end}): need 0 <= start < end")
    if seg.start < pack.start or seg.end > pack.end:
        raise InvalidInput(
            f"segment [{seg.start}, {seg.end}) is not inside the driving pack's frames [{pack.start}, {pack.end})"
        )
    return seg.start, seg.end


class MotionServicer(HealthMixin):
    def __init__(self, store: ObjectStore, runner: FommRunner) -> None:
        self.store = store
        self.runner = runner
        self._announced: set[str] = set()

    def _metrics(
        self, t0: float, model_id: str, frames: int = 0, hit: bool = False
    ) -> common_pb2.StageMetrics:
        wall = time.perf_counter() - t0
        extra = {"frames_per_s": frames / wall} if frames and wall > 0 and not hit else {}
        return common_pb2.StageMetrics(
            wall_s=wall,
            frames=frames,
            cache_hit=hit,
            model_id=model_id,
            device=str(self.runner.device),
            extra=extra,
        )

    def _model_id(self, checkpoint: str, log: logging.LoggerAdapter) -> str:
        """Load (once) and name the checkpoint's weights; say loudly when they are synthetic."""
        m = self.runner.model(checkpoint)
        if str(m.path) not in self._announced:
            self._announced.add(str(m.path))
            if m.synthetic:
                log.warning(
                    "FOMM weights %s are SYNTHETIC (%s): outputs are not real animations", m.path, m.model_id
                )
            else:
                log.info("FOMM weights %s loaded (%s)", m.path, m.model_id)
        return m.model_id

    def _pack(self, ref: common_pb2.ObjectRef, what: str) -> FramePack:
        return unpack_frames(refs.fetch_bytes(self.store, ref, what)[0])

    def _source_frame(self, ref: common_pb2.ObjectRef) -> np.ndarray:
        pack = self._pack(ref, "source")
        if pack.count != 1:
            raise InvalidInput(
                f"source: the pack holds {pack.count} frames; expected exactly 1 (the face crop)"
            )
        return pack.frames[0]

    # -- PrepareMotion ------------------------------------------------------------------------
    @rpc_method(motion_pb2.PrepareMotionResponse)
    async def PrepareMotion(self, request: motion_pb2.PrepareMotionRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._prepare, request)

    def _prepare(self, req: motion_pb2.PrepareMotionRequest) -> motion_pb2.PrepareMotionResponse:
        t0 = time.perf_counter()
        log = stage_logger(STAGE, render_id=req.ctx.render_id, trace_id=req.ctx.trace_id)
        checkpoint = self.runner.checkpoint_name(req.checkpoint)
        if req.initial_frame < 0:
            raise InvalidInput(f"initial_frame={req.initial_frame}: must be >= 0")
        inputs = [
            refs.object_digest(self.store, req.source, "source"),
            refs.object_digest(self.store, req.driving_first, "driving_first"),
        ]
        model_id = self._model_id(checkpoint, log)
        params = {
            "checkpoint": checkpoint,
            "initial_frame": req.initial_frame,
            "find_best": req.find_best_frame,
        }
        key = cache_key(STAGE, stage_digest(f"{STAGE}.prepare", model_id, params, inputs), "globals.npz")
        hit = self.store.exists(key)
        if hit:
            g = MotionGlobals.from_bytes(self.store.get_bytes(key))
        else:
            driving = self._pack(req.driving_first, "driving_first")
            g = self.runner.prepare(
                self._source_frame(req.source),
                driving.frames,
                checkpoint,
                initial_index=req.initial_frame,
                start=driving.start,
                find_best=req.find_best_frame,
            )
            self.store.put_bytes(key, g.to_bytes(), "application/x-npz")
        log.info(
            "globals %s: initial frame %d, scale %.4f (%s)",
            key,
            g.initial_frame,
            g.adapt_movement_scale,
            "cached" if hit else "new",
        )
        return motion_pb2.PrepareMotionResponse(
            globals=refs.to_ref(self.store, self.store.stat(key)),
            metrics=self._metrics(t0, model_id, 0, hit),
            initial_frame=g.initial_frame,
            adapt_movement_scale=g.adapt_movement_scale,  # NaN when a hull is degenerate
        )

    # -- Animate ------------------------------------------------------------------------------
    @rpc_method(motion_pb2.AnimateResponse)
    async def Animate(self, request: motion_pb2.AnimateRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._animate, request)

    def _params(self, req: motion_pb2.AnimateRequest, checkpoint: str) -> dict[str, Any]:
        mode = _MODES.get(req.mode)
        if mode is None:
            raise InvalidInput(f"unknown keypoint mode {req.mode}")
        precision = precisions.from_proto(req.precision, self.runner.cfg.precision)
        return {
            "checkpoint": checkpoint,
            "mode": mode.value,
            "adapt": bool(req.adapt_movement_scale) and mode is Mode.RELATIVE,
            "precision": precision,
            "align_corners": self.runner.cfg.align_corners,
            "segment": [req.segment.start, req.segment.end],
        }

    def _animate(self, req: motion_pb2.AnimateRequest) -> motion_pb2.AnimateResponse:
        t0 = time.perf_counter()
        seg = req.segment
        log = stage_logger(STAGE, render_id=req.ctx.render_id, segment=seg.index, trace_id=req.ctx.trace_id)
        checkpoint = self.runner.checkpoint_name(req.checkpoint)
        p = self._params(req, checkpoint)
        inputs = [
            refs.object_digest(self.store, req.source, "source"),
            refs.object_digest(self.store, req.driving, "driving"),
            refs.object_digest(self.store, req.globals, "globals"),
        ]
        model_id = self._model_id(checkpoint, log)
        digest = stage_digest(f"{STAGE}.animate", model_id, p, inputs)
        if seg.end > 0 and self.store.exists(key := _segment_key(digest, seg.start, seg.end)):
            return self._animate_response(key, t0, model_id, seg.end - seg.start, True)  # no download
        driving = self._pack(req.driving, "driving")
        start, end = segment_range(seg, driving)
        key = _segment_key(digest, start, end)
        hit = self.store.exists(key)
        if not hit:
            frames = driving.frames[start - driving.start : end - driving.start]
            out = self._render(req, frames, start, p)
            data = pack_frames(np.ascontiguousarray(out), fps=driving.fps, start=start)
            self.store.put_bytes(key, data, "application/x-lihq-framepack")
        resp = self._animate_response(key, t0, model_id, end - start, hit)
        log.info(
            "animated [%d, %d) %s -> %s (%s, %.2f frames/s)",
            start,
            end,
            p["mode"],
            key,
            "cached" if hit else "new",
            resp.metrics.extra.get("frames_per_s", 0.0),
        )
        return resp

    def _render(
        self, req: motion_pb2.AnimateRequest, frames: np.ndarray, start: int, p: dict[str, Any]
    ) -> np.ndarray:
        source = self._source_frame(req.source)
        g = MotionGlobals.from_bytes(refs.fetch_bytes(self.store, req.globals, "globals")[0])
        spec = AnimateSpec(Mode(p["mode"]), p["adapt"], p["checkpoint"], start, p["precision"])
        return self.runner.animate(source, frames, g, spec)

    def _animate_response(
        self, key: str, t0: float, model_id: str, frames: int, hit: bool
    ) -> motion_pb2.AnimateResponse:
        ref = refs.to_ref(self.store, self.store.stat(key))
        return motion_pb2.AnimateResponse(pack=ref, metrics=self._metrics(t0, model_id, frames, hit))


def _segment_key(digest: str, start: int, end: int) -> str:
    return cache_key(STAGE, digest, f"seg_{start:06d}_{end:06d}.lfp")
