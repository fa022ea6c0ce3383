"""LipSyncService logic: fetch objects -> Wav2LipRunner -> put objects (docs/architecture.md §3).

Transport-free: the Ray Serve deployment (deployment.py) subclasses this, and `lihq.grpc.server`
hosts it on a plain grpc.aio server. Every output key is content-addressed from the stage, the model
id (weights sha256 or `synthetic:<seed>`), the parameters and the input digests, so a repeated call
is a cache hit and a retry rewrites the same object. Blocking work runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
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
from lihq.v1 import common_pb2, lipsync_pb2
from services.wav2lip import audio
from services.wav2lip.faces import Pads
from services.wav2lip.haar import MODEL_ID as haar_model_id
from services.wav2lip.haar import detect_haar
from services.wav2lip.objects import FaceTrack, MelObject
from services.wav2lip.runner import CHECKPOINTS, DEFAULT_CHECKPOINT, Wav2LipRunner
from services.wav2lip.track import build_track, fixed_track

STAGE = "wav2lip"
MEL_MODEL_ID = "wav2lip-mel:hparams@5c90fa9b"  # no weights: the mel is a pure function of the wav
PACK_TYPE = "application/x-lihq-framepack"
NPZ_TYPE = "application/x-npz"


@dataclass(frozen=True)
class _Clip:
    """Detections of a whole clip, gathered pack by pack."""

    rects: list
    height: int
    width: int
    start: int
    n: int


class LipSyncServicer(HealthMixin):
    def __init__(self, store: ObjectStore, runner: Wav2LipRunner | None = None) -> None:
        self.store = store
        self.runner = runner or Wav2LipRunner()

    def _metrics(self, t0: float, frames: int, hit: bool, model_id: str) -> common_pb2.StageMetrics:
        return common_pb2.StageMetrics(
            wall_s=time.perf_counter() - t0,
            frames=frames,
            cache_hit=hit,
            model_id=model_id,
            device=str(self.runner.device),
        )

    def _ref(self, key: str) -> common_pb2.ObjectRef:
        return refs.to_ref(self.store, self.store.stat(key))

    # -- PrepareAudio -------------------------------------------------------------------------
    @rpc_method(lipsync_pb2.PrepareAudioResponse)
    async def PrepareAudio(self, request: lipsync_pb2.PrepareAudioRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._prepare_audio, request)

    def _prepare_audio(self, req: lipsync_pb2.PrepareAudioRequest) -> lipsync_pb2.PrepareAudioResponse:
        t0 = time.perf_counter()
        fps = req.fps or 25.0
        src = refs.object_digest(self.store, req.wav_16k, "wav_16k")
        digest = stage_digest(f"{STAGE}.mel", MEL_MODEL_ID, {"fps": fps}, [src])
        key = cache_key(STAGE, digest, "mel.npz")
        hit = self.store.exists(key)
        if hit:
            mel = MelObject.from_bytes(self.store.get_bytes(key), "cached mel")
        else:
            data, _ = refs.fetch_bytes(self.store, req.wav_16k, "wav_16k")
            mel = self.runner.prepare_audio(audio.read_wav(data), fps)
            self.store.put_bytes(key, mel.to_bytes(), NPZ_TYPE)
        n_cols = int(mel.mel.shape[1])
        stage_logger(STAGE, render_id=req.ctx.render_id).info(
            "mel of %s: %d columns, %d chunks at %g fps (%s)",
            req.wav_16k.key,
            n_cols,
            mel.n_chunks,
            fps,
            "cached" if hit else "new",
        )
        return lipsync_pb2.PrepareAudioResponse(
            mel=self._ref(key),
            n_chunks=mel.n_chunks,
            mel_frames=n_cols,
            duration_s=mel.duration_s,
            metrics=self._metrics(t0, mel.n_chunks, hit, MEL_MODEL_ID),
        )

    # -- TrackFaces ---------------------------------------------------------------------------
    @rpc_method(lipsync_pb2.TrackFacesResponse)
    async def TrackFaces(self, request: lipsync_pb2.TrackFacesRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._track_faces, request)

    def _track_faces(self, req: lipsync_pb2.TrackFacesRequest) -> lipsync_pb2.TrackFacesResponse:
        t0 = time.perf_counter()
        if not req.packs:
            raise InvalidInput("packs: at least one frame pack of the clip is required")
        pads = self._pads(req)
        box = [req.box.y1, req.box.y2, req.box.x1, req.box.x2] if req.HasField("box") else None
        digests = [refs.object_digest(self.store, p, f"pack {i}") for i, p in enumerate(req.packs)]
        if req.detector not in ("", "s3fd", "haar"):
            raise InvalidInput(f"detector {req.detector[:40]!r}: expected s3fd or haar")
        haar = req.detector == "haar" and box is None
        model_id = "fixed_box" if box else haar_model_id if haar else self.runner.detector_id()
        params = {
            "pads": list(pads.as_tuple()),
            "carry": req.carry_last_box,
            "smooth": not req.no_smooth,
            "box": box,
        }
        key = cache_key(STAGE, stage_digest(f"{STAGE}.track", model_id, params, digests), "track.npz")
        hit = self.store.exists(key)
        if hit:
            track = FaceTrack.from_bytes(self.store.get_bytes(key), "cached track")
        else:
            clip = self._detect_clip(req.packs, detect=box is None, haar=haar)
            if box is not None:
                track = fixed_track(box, clip.n, clip.height, clip.width, clip.start)
            else:
                track = build_track(
                    clip.rects,
                    clip.height,
                    clip.width,
                    pads,
                    smooth=not req.no_smooth,
                    carry_last_box=req.carry_last_box,
                    start=clip.start,
                )
            self.store.put_bytes(key, track.to_bytes(), NPZ_TYPE)
        carried = int((~track.detected).sum()) if track.source == "s3fd" else 0
        stage_logger(STAGE, render_id=req.ctx.render_id).info(
            "face track of %d frames (%s, %d carried, %s)",
            track.n_frames,
            track.source,
            carried,
            "cached" if hit else "new",
        )
        return lipsync_pb2.TrackFacesResponse(
            track=self._ref(key),
            n_frames=track.n_frames,
            carried_frames=carried,
            metrics=self._metrics(t0, track.n_frames, hit, model_id),
        )

    @staticmethod
    def _pads(req: lipsync_pb2.TrackFacesRequest) -> Pads:
        if not req.HasField("pads"):
            return Pads()
        p = req.pads
        return Pads(top=p.top, bottom=p.bottom, left=p.left, right=p.right)

    def _detect_clip(self, packs: Any, detect: bool, haar: bool = False) -> _Clip:
        """Read the packs one at a time (only one segment in memory), checking they form one clip."""
        rects: list = []
        first: FramePack | None = None
        expect = 0
        for i, ref in enumerate(packs):
            pack = unpack_frames(refs.fetch_bytes(self.store, ref, f"pack {i}")[0])
            if first is None:
                first, expect = pack, pack.start
            if pack.start != expect:
                raise InvalidInput(
                    f"pack {i} starts at frame {pack.start}, expected {expect}: packs must be contiguous"
                )
            if (pack.height, pack.width) != (first.height, first.width) or abs(pack.fps - first.fps) > 1e-9:
                raise InvalidInput(
                    f"pack {i} is {pack.width}x{pack.height}@{pack.fps}, the first is "
                    f"{first.width}x{first.height}@{first.fps}"
                )
            if detect and pack.count:
                rects += detect_haar(pack.frames) if haar else self.runner.detect(pack.frames)
            expect = pack.end
        assert first is not None
        return _Clip(rects, first.height, first.width, first.start, expect - first.start)

    # -- LipSync ------------------------------------------------------------------------------
    @rpc_method(lipsync_pb2.LipSyncResponse)
    async def LipSync(self, request: lipsync_pb2.LipSyncRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._lip_sync, request)

    def _lip_sync(self, req: lipsync_pb2.LipSyncRequest) -> lipsync_pb2.LipSyncResponse:
        t0 = time.perf_counter()
        checkpoint = req.checkpoint or DEFAULT_CHECKPOINT
        if checkpoint not in CHECKPOINTS:
            raise InvalidInput(f"checkpoint {checkpoint!r}: expected one of {', '.join(CHECKPOINTS)}")
        precision = precisions.from_proto(req.precision, self.runner.cfg.precision)
        seg = (req.segment.start, req.segment.end) if req.segment.end > 0 else None
        if seg is not None and not 0 <= seg[0] < seg[1]:
            raise InvalidInput(f"segment [{seg[0]}, {seg[1]}): need 0 <= start < end")
        digests = [
            refs.object_digest(self.store, req.frames, "frames"),
            refs.object_digest(self.store, req.mel, "mel"),
            refs.object_digest(self.store, req.track, "track"),
        ]
        model_id = self.runner.model_id(checkpoint)
        params = {"checkpoint": checkpoint, "precision": precision, "segment": list(seg) if seg else None}
        digest = stage_digest(f"{STAGE}.lipsync", model_id, params, digests)
        name = f"seg_{seg[0]:06d}_{seg[1]:06d}.lfp" if seg else "pack.lfp"
        key = cache_key(STAGE, digest, name)
        hit = self.store.exists(key)
        frames = 0
        if not hit:
            frames = self._render(req, seg, checkpoint, precision, key)
        stage_logger(STAGE, render_id=req.ctx.render_id, segment=req.segment.index).info(
            "lip sync %s with %s (%s)", req.frames.key, checkpoint, "cached" if hit else f"{frames} frames"
        )
        return lipsync_pb2.LipSyncResponse(
            pack=self._ref(key), metrics=self._metrics(t0, frames, hit, model_id)
        )

    def _render(
        self,
        req: lipsync_pb2.LipSyncRequest,
        seg: tuple[int, int] | None,
        ckpt: str,
        precision: str,
        key: str,
    ) -> int:
        pack = unpack_frames(refs.fetch_bytes(self.store, req.frames, "frames")[0])
        start, end = seg or (pack.start, pack.end)
        if start < pack.start or end > pack.end:
            raise InvalidInput(
                f"segment [{start}, {end}) is not inside the frame pack, which holds [{pack.start}, {pack.end})"
            )
        mel = MelObject.from_bytes(refs.fetch_bytes(self.store, req.mel, "mel")[0], "mel")
        track = FaceTrack.from_bytes(refs.fetch_bytes(self.store, req.track, "track")[0], "track")
        frames = np.ascontiguousarray(pack.frames[start - pack.start : end - pack.start])
        out = self.runner.lip_sync(frames, start, pack.fps, mel, track, ckpt, precision)
        self.store.put_bytes(key, pack_frames(out, fps=pack.fps, start=start), PACK_TYPE)
        return len(out)
