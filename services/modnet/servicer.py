"""MattingService logic: fetch objects -> ModnetRunner / compose -> put objects (docs/architecture.md §3).

Transport-free: the Ray Serve deployment (deployment.py) subclasses this, and `lihq.grpc.server` can
host it on a plain grpc.aio server. Blocking work runs in worker threads; the network itself runs
under a lock (one batch loop at a time per replica keeps GPU memory bounded while the object IO of
other calls overlaps). The runner is built on first use, so a replica without weights starts, answers
FAILED_PRECONDITION ("run `lihq weights fetch modnet`") and works once the weights are in place.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lihq.cache import cache_key, stage_digest
from lihq.errors import InvalidInput
from lihq.framepack import FramePack, pack_frames, unpack_frames
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.grpc.health import HealthMixin
from lihq.log import stage_logger
from lihq.storage.base import ObjectStore
from lihq.v1 import common_pb2, matting_pb2
from services.modnet import requests as rq
from services.modnet.alpha_video import FORMATS, AlphaVideoWriter, probe_alpha
from services.modnet.background import Background
from services.modnet.compose import Placement, check_canvas, composite, place_speaker
from services.modnet.runner import ModnetRunner

STAGE = "modnet"
COMPOSE_ID = "compose-v1"  # compositing has no weights; bump when its output changes
PACK_TYPE = "application/x-lihq-framepack"
_PROTECTED_PREFIXES = ("inputs/",)
_BG_CACHE_FILES = 4


class MattingServicer(HealthMixin):
    def __init__(
        self,
        store: ObjectStore,
        runner: ModnetRunner | Callable[[], ModnetRunner],
        workdir: Path | None = None,
    ) -> None:
        self.store = store
        self.workdir = workdir
        self._runner_obj = runner if isinstance(runner, ModnetRunner) else None
        self._make_runner = None if isinstance(runner, ModnetRunner) else runner
        self._load_lock = threading.Lock()
        self._net_lock = threading.Lock()
        self._bg_dir = tempfile.TemporaryDirectory(prefix="lihq-modnet-bg-", dir=workdir)
        self._bg_files: dict[str, Path] = {}
        self._bg_lock = threading.Lock()

    # -- shared helpers -----------------------------------------------------------------------
    def runner(self) -> ModnetRunner:
        """The runner, loaded on first use (WeightsMissing -> FAILED_PRECONDITION, retried next call)."""
        with self._load_lock:
            if self._runner_obj is None:
                assert self._make_runner is not None
                self._runner_obj = self._make_runner()
            return self._runner_obj

    def _metrics(
        self, t0: float, frames: int, hit: bool, model_id: str, device: str = "cpu"
    ) -> common_pb2.StageMetrics:
        return common_pb2.StageMetrics(
            wall_s=time.perf_counter() - t0, frames=frames, cache_hit=hit, model_id=model_id, device=device
        )

    def _pack(self, ref: common_pb2.ObjectRef, what: str) -> FramePack:
        return unpack_frames(refs.fetch_bytes(self.store, ref, what)[0])

    def _ref(self, key: str) -> common_pb2.ObjectRef:
        return refs.to_ref(self.store, self.store.stat(key))

    # -- Matte --------------------------------------------------------------------------------
    @rpc_method(matting_pb2.MatteResponse)
    async def Matte(self, request: matting_pb2.MatteRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._matte, request)

    def _matte(self, req: matting_pb2.MatteRequest) -> matting_pb2.MatteResponse:
        t0 = time.perf_counter()
        runner = self.runner()
        precision = rq.precision(req.precision, runner.cfg.precision)
        src = refs.object_digest(self.store, req.frames, "frames")
        params = {"ref_size": runner.cfg.ref_size, "precision": precision}
        key = cache_key(STAGE, stage_digest(f"{STAGE}.matte", runner.model_id, params, [src]), "matte.lfp")
        hit = self.store.exists(key)
        count = 0
        if not hit:
            pack = self._pack(req.frames, "frames")
            with self._net_lock:
                mattes = runner.matte_uint8(pack.frames, precision)
            rgb = np.repeat(mattes[..., None], 3, axis=3)
            self.store.put_bytes(key, pack_frames(rgb, fps=pack.fps, start=pack.start), PACK_TYPE)
            count = pack.count
        stage_logger(STAGE, render_id=req.ctx.render_id, segment=req.segment.index).info(
            "matte %s -> %s (%s)", req.frames.key, key, "cached" if hit else f"{count} frames"
        )
        device = str(runner.device)
        return matting_pb2.MatteResponse(
            matte=self._ref(key), metrics=self._metrics(t0, count, hit, runner.model_id, device)
        )

    # -- Composite ----------------------------------------------------------------------------
    @rpc_method(matting_pb2.CompositeResponse)
    async def Composite(self, request: matting_pb2.CompositeRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._composite, request)

    def _composite(self, req: matting_pb2.CompositeRequest) -> matting_pb2.CompositeResponse:
        t0 = time.perf_counter()
        placement = rq.placement(req.placement)
        bg_ref = rq.background_ref(req.background)
        inputs = [
            refs.object_digest(self.store, req.frames, "frames"),
            refs.object_digest(self.store, req.matte, "matte"),
            refs.object_digest(self.store, bg_ref, "background") if bg_ref is not None else "",
        ]
        spec_params = rq.background_params(req.background)
        params = {**spec_params, **rq.placement_params(placement), "size": [req.width, req.height]}
        digest = stage_digest(f"{STAGE}.composite", COMPOSE_ID, params, inputs)
        out_key, alpha_key = cache_key(STAGE, digest, "composite.lfp"), cache_key(STAGE, digest, "alpha.lfp")
        hit = self.store.exists(out_key) and (not req.alpha_output or self.store.exists(alpha_key))
        count = 0
        if not hit:
            frames, mattes = self._speaker(req.frames, req.matte)
            path = self._background_file(bg_ref, inputs[2]) if bg_ref is not None else None
            bg = Background(rq.background_spec(req.background, path))
            canvas = bg.canvas_size((frames.width, frames.height), req.width, req.height)
            behind = bg.frames(frames.start, frames.count, frames.fps, canvas)
            out, alpha = composite(frames.frames, mattes, behind, placement)
            self.store.put_bytes(out_key, pack_frames(out, fps=frames.fps, start=frames.start), PACK_TYPE)
            if req.alpha_output:
                rgb = np.repeat(alpha[..., None], 3, axis=3)
                self.store.put_bytes(
                    alpha_key, pack_frames(rgb, fps=frames.fps, start=frames.start), PACK_TYPE
                )
            count = frames.count
        stage_logger(STAGE, render_id=req.ctx.render_id, segment=req.segment.index).info(
            "composite %s over %s -> %s (%s)",
            req.frames.key,
            spec_params["kind"],
            out_key,
            "cached" if hit else f"{count} frames",
        )
        return matting_pb2.CompositeResponse(
            pack=self._ref(out_key),
            alpha=self._ref(alpha_key) if req.alpha_output else None,
            metrics=self._metrics(t0, count, hit, COMPOSE_ID),
        )

    def _speaker(
        self, frames_ref: common_pb2.ObjectRef, matte_ref: common_pb2.ObjectRef, index: int | None = None
    ) -> tuple[FramePack, np.ndarray]:
        """The speaker pack and its mattes (N, H, W) uint8, checked to belong together."""
        suffix = "" if index is None else f" {index}"
        frames = self._pack(frames_ref, "frames" + suffix)
        matte = self._pack(matte_ref, "matte" + suffix)
        if (matte.count, matte.height, matte.width) != (frames.count, frames.height, frames.width):
            raise InvalidInput(
                f"matte pack{suffix} holds {matte.count} frames of {matte.width}x{matte.height}, the speaker pack "
                f"{frames.count} of {frames.width}x{frames.height}: pass the matte made from these frames"
            )
        if matte.start != frames.start:
            raise InvalidInput(
                f"matte pack{suffix} starts at frame {matte.start}, the speaker pack at {frames.start}"
            )
        return frames, np.ascontiguousarray(matte.frames[..., 0])

    def _background_file(self, ref: common_pb2.ObjectRef, digest: str) -> Path:
        """A local copy of a background object, kept for the next segments (a few files at most)."""
        with self._bg_lock:
            path = self._bg_files.get(digest)
            if path is not None and path.is_file():
                return path
            path = Path(self._bg_dir.name) / digest
            refs.fetch(self.store, ref, path, "background")
            self._bg_files[digest] = path
            while len(self._bg_files) > _BG_CACHE_FILES:
                old = next(iter(self._bg_files))
                self._bg_files.pop(old).unlink(missing_ok=True)
            return path

    # -- ExportAlpha --------------------------------------------------------------------------
    @rpc_method(matting_pb2.ExportAlphaResponse)
    async def ExportAlpha(self, request: matting_pb2.ExportAlphaRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._export_alpha, request)

    def _export_alpha(self, req: matting_pb2.ExportAlphaRequest) -> matting_pb2.ExportAlphaResponse:
        t0 = time.perf_counter()
        fmt = rq.alpha_format(req.format)
        placement = rq.placement(req.placement)
        if not req.frames or len(req.frames) != len(req.mattes):
            raise InvalidInput(
                f"{len(req.frames)} frame packs and {len(req.mattes)} matte packs: give one matte pack per frame pack"
            )
        inputs = [refs.object_digest(self.store, r, f"frames {i}") for i, r in enumerate(req.frames)]
        inputs += [refs.object_digest(self.store, r, f"matte {i}") for i, r in enumerate(req.mattes)]
        params = {"format": fmt, **rq.placement_params(placement), "size": [req.width, req.height]}
        digest = stage_digest(f"{STAGE}.alpha_video", COMPOSE_ID, params, inputs)
        key = self._output_key(
            req.output_key, cache_key(STAGE, digest, "speaker_alpha" + FORMATS[fmt]), req.ctx.render_id
        )
        with tempfile.TemporaryDirectory(prefix="lihq-modnet-", dir=self.workdir) as tmp:
            out = Path(tmp) / ("speaker_alpha" + FORMATS[fmt])
            fps = self._write_alpha(req, placement, fmt, out)
            info = probe_alpha(out)
            stored = self.store.put_file(key, out, "video/webm" if fmt == "webm" else "video/quicktime")
        stage_logger(STAGE, render_id=req.ctx.render_id).info(
            "alpha video (%s, %s) of %d packs -> %s", fmt, info.pix_fmt, len(req.frames), key
        )
        return matting_pb2.ExportAlphaResponse(
            video=refs.to_ref(self.store, stored),
            pix_fmt=info.pix_fmt,
            frames=info.frames,
            fps=fps,
            metrics=self._metrics(t0, info.frames, False, COMPOSE_ID),
        )

    def _write_alpha(
        self, req: matting_pb2.ExportAlphaRequest, placement: Placement, fmt: str, out: Path
    ) -> float:
        """Stream every pack, placed on the canvas, into the writer; returns the fps."""
        first = self._speaker(req.frames[0], req.mattes[0], 0)
        canvas = self._alpha_canvas(req, first[0])
        fps, expect = first[0].fps, first[0].start
        with AlphaVideoWriter(out, fps, fmt) as writer:
            for i in range(len(req.frames)):
                frames, mattes = first if i == 0 else self._speaker(req.frames[i], req.mattes[i], i)
                if frames.start != expect or frames.fps != fps:
                    raise InvalidInput(
                        f"frame pack {i} starts at {frames.start} ({frames.fps:g} fps), expected {expect} "
                        f"({fps:g} fps): packs must be contiguous, in order, at one fps"
                    )
                writer.write(*place_speaker(frames.frames, mattes, placement, canvas))
                expect = frames.end
        return fps

    @staticmethod
    def _alpha_canvas(req: matting_pb2.ExportAlphaRequest, frames: FramePack) -> tuple[int, int]:
        if (req.width > 0) != (req.height > 0):
            raise InvalidInput(
                f"output size {req.width}x{req.height}: give both width and height, or neither"
            )
        return check_canvas((req.width, req.height) if req.width else (frames.width, frames.height))

    def _output_key(self, requested: str, default: str, render_id: str = "") -> str:
        return refs.render_output_key(requested, render_id, default)
