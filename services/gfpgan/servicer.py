"""FaceRestorationService logic: fetch a segment frame pack -> GfpganRunner -> put one frame pack.

Transport-free: deployment.py subclasses it for Ray Serve; `lihq.grpc.server.serve_plain` hosts it
on a plain grpc.aio server. The output key is content-addressed (docs/architecture.md §3): stage, model id
(GFPGAN + facexlib [+ RealESRGAN] weights ids), every parameter that changes the pixels, the segment
and the input pack's digest -> `cache/gfpgan/<digest>/seg_<start>_<end>.lfp`. A repeated request is a
cache hit; a retry rewrites the same object.

Order of checks: parameters (INVALID_ARGUMENT) -> the input object (NOT_FOUND) -> the weights
(FAILED_PRECONDITION naming `lihq weights fetch NAME`) -> the pack's frames and segment.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

from lihq import precision as precisions
from lihq.cache import cache_key, stage_digest
from lihq.errors import InvalidInput
from lihq.framepack import HEADER_SIZE, MAGIC, FramePack, pack_frames, unpack_frames
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.grpc.health import HealthMixin
from lihq.log import stage_logger
from lihq.storage.base import ObjectStore
from lihq.v1 import common_pb2, restoration_pb2
from services.gfpgan.noise import NoiseSpec
from services.gfpgan.runner import GfpganRunner, RestoreParams

STAGE = "gfpgan"
_PACK_TYPE = "application/x-lihq-framepack"
_NOISE = {
    restoration_pb2.NOISE_MODE_UNSPECIFIED: "seeded",
    restoration_pb2.NOISE_MODE_SEEDED: "seeded",
    restoration_pb2.NOISE_MODE_STORED: "stored",
    restoration_pb2.NOISE_MODE_RANDOM: "random",
}


def params_from_request(req: restoration_pb2.RestoreRequest) -> RestoreParams:
    """Typed, validated parameters (InvalidInput with a message a caller can act on)."""
    precision = precisions.from_proto(req.precision, None)  # None: the runner's default
    if req.noise not in _NOISE:
        raise InvalidInput(f"unknown noise mode {req.noise}")
    if req.upscale < 0 or req.output_size < 0 or req.smooth_radius < 0:
        raise InvalidInput("upscale, output_size and smooth_radius must be >= 0")
    return RestoreParams(
        version=req.version or "1.4",
        upscale=req.upscale or 4,
        output_size=req.output_size,
        background=req.background_upsampler,
        only_center_face=req.only_center_face,
        paste_back=not req.faces_only,
        noise=NoiseSpec(_NOISE[req.noise], req.noise_seed),
        smooth_landmarks=req.smooth_landmarks,
        smooth_radius=req.smooth_radius,
        precision=precision,
    ).validate()


def cache_params(p: RestoreParams, precision: str, seg: common_pb2.Segment) -> dict[str, Any]:
    """Everything that determines the output's pixels (the model id goes in separately)."""
    return {
        "version": p.version,
        "scale": ["size", p.output_size] if p.output_size else ["x", p.upscale],
        "background": p.background and p.paste_back,
        "only_center_face": p.only_center_face,
        "faces_only": not p.paste_back,
        "noise": [p.noise.mode, p.noise.seed if p.noise.mode == "seeded" else 0],
        "smooth_radius": p.radius,
        "precision": precision,
        "segment": [seg.start, seg.end, seg.context_before, seg.context_after],
    }


def check_segment(pack: FramePack, seg: common_pb2.Segment) -> tuple[tuple[int, int], int]:
    """((context_before, context_after), output start) of `pack` under `seg` (unset: whole pack)."""
    if seg.end == 0 and seg.start == 0:
        return (0, 0), pack.start
    cb, ca = seg.context_before, seg.context_after
    if seg.end <= seg.start or cb < 0 or ca < 0:
        raise InvalidInput(
            f"segment [{seg.start}, {seg.end}) with context {cb}/{ca}: need end > start, contexts >= 0"
        )
    want_start, want_n = seg.start - cb, seg.end - seg.start + cb + ca
    if pack.start != want_start or pack.count != want_n:
        raise InvalidInput(
            f"frame pack covers [{pack.start}, {pack.end}); segment [{seg.start}, {seg.end}) with context "
            f"{cb} before / {ca} after needs [{want_start}, {want_start + want_n})"
        )
    return (cb, ca), seg.start


def _artifact(seg: common_pb2.Segment) -> str:
    return f"seg_{seg.start:06d}_{seg.end:06d}.lfp" if seg.end > seg.start else "frames.lfp"


def pack_shape(head: bytes) -> tuple[int, int, int]:
    """(count, height, width) from a frame pack's first HEADER_SIZE bytes (layout in lihq.framepack)."""
    if len(head) < HEADER_SIZE or head[:8] != MAGIC:
        raise InvalidInput("cached output is not a LIHQ frame pack")
    return struct.unpack_from("<III", head, 32)


class FaceRestorationServicer(HealthMixin):
    def __init__(self, store: ObjectStore, runner: GfpganRunner) -> None:
        self.store = store
        self.runner = runner

    @rpc_method(restoration_pb2.RestoreResponse)
    async def Restore(self, request: restoration_pb2.RestoreRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._restore, request)

    def _restore(self, req: restoration_pb2.RestoreRequest) -> restoration_pb2.RestoreResponse:
        t0 = time.perf_counter()
        params = params_from_request(req)
        precision = params.precision or self.runner.cfg.precision
        src = refs.object_digest(self.store, req.frames, "frames")
        model_id = self.runner.model_id(params)
        seg = req.segment
        digest = stage_digest(STAGE, model_id, cache_params(params, precision, seg), [src])
        log = stage_logger(STAGE, render_id=req.ctx.render_id, segment=seg.index)
        key = cache_key(STAGE, digest, _artifact(seg))
        if self.store.exists(key):
            n, h, w = pack_shape(self._head(key))
            log.info("cache hit %s", key)
            return self._response(key, (n, h, w), [], model_id, t0, {}, cache_hit=True)
        pack = unpack_frames(refs.fetch_bytes(self.store, req.frames, "frames")[0])
        context, start = check_segment(pack, seg)
        result = self.runner.restore(pack.frames, params, context)
        self.store.put_bytes(key, pack_frames(result.frames, fps=pack.fps, start=start), _PACK_TYPE)
        log.info(
            "restored %d frames (%d faces) v%s -> %s",
            len(result.frames),
            sum(result.faces),
            params.version,
            key,
        )
        extra = {"faces": float(sum(result.faces)), **result.timings}
        shape = result.frames.shape[:3]
        return self._response(key, shape, result.faces, model_id, t0, extra, cache_hit=False)

    def _head(self, key: str) -> bytes:
        head = b""
        for chunk in self.store.iter_chunks(key, HEADER_SIZE):
            head += chunk
            if len(head) >= HEADER_SIZE:
                break
        return head

    def _response(
        self,
        key: str,
        shape: tuple[int, int, int],
        faces: list[int],
        model_id: str,
        t0: float,
        extra: dict[str, float],
        cache_hit: bool,
    ) -> restoration_pb2.RestoreResponse:
        """`faces` is empty on a cache hit (the pack alone is stored)."""
        metrics = common_pb2.StageMetrics(
            wall_s=time.perf_counter() - t0,
            frames=int(shape[0]),
            cache_hit=cache_hit,
            model_id=model_id,
            device=str(self.runner.device),
            extra=extra,
        )
        return restoration_pb2.RestoreResponse(
            pack=refs.to_ref(self.store, self.store.stat(key)),
            metrics=metrics,
            width=int(shape[2]),
            height=int(shape[1]),
            faces_per_frame=faces,
        )
