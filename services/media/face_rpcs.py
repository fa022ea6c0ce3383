"""PrepareFace / ProceduralMotion / PasteBack RPCs of MediaService (mixed into MediaServicer).

The pure work lives in services/media/face.py and procedural_motion.py; this layer fetches objects, derives
content-addressed keys and puts results, like the rest of the servicer.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from lihq import media
from lihq.cache import cache_key, stage_digest
from lihq.errors import InvalidInput
from lihq.framepack import pack_frames, unpack_frames
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.storage.base import ObjectStore
from lihq.v1 import common_pb2, media_pb2
from services.media import face
from services.media import procedural_motion as motion

STAGE = "media"


class FaceRpcsMixin:
    """Needs `store`, `_tmp()` and `_metrics()` from the class it is mixed into (MediaServicer)."""

    store: ObjectStore

    def _tmp(self) -> tempfile.TemporaryDirectory: ...  # provided by MediaServicer

    def _metrics(self, t0: float, frames: int = 0, cache_hit: bool = False) -> common_pb2.StageMetrics: ...

    @rpc_method(media_pb2.PrepareFaceResponse)
    async def PrepareFace(self, request: media_pb2.PrepareFaceRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._prepare_face, request)

    def _prepare_face(self, req: media_pb2.PrepareFaceRequest) -> media_pb2.PrepareFaceResponse:
        t0 = time.perf_counter()
        size, scale = req.size or 256, req.scale or 1.9
        if not 64 <= size <= 1024 or not 1.0 <= scale <= 4.0:
            raise InvalidInput(f"size={size} must be in [64, 1024] and scale={scale} in [1, 4]")
        src = refs.object_digest(self.store, req.image, "image")
        digest = stage_digest(f"{STAGE}.face", "haar", {"size": size, "scale": scale}, [src])
        crop_key, tf_key = cache_key(STAGE, digest, "crop.lfp"), cache_key(STAGE, digest, "transform.json")
        hit = self.store.exists(crop_key) and self.store.exists(tf_key)
        if not hit:
            with self._tmp() as tmp:
                path, _ = refs.fetch(self.store, req.image, Path(tmp) / "image", "image")
                photo = media.load_image(path)
            tf = face.crop_transform(photo, scale)
            crop = face.cut_crop(photo, tf, size)
            self.store.put_bytes(crop_key, pack_frames(crop[None], fps=25.0, start=0))
            self.store.put_bytes(tf_key, tf.to_json(), "application/json")
        tf = face.CropTransform.from_json(self.store.get_bytes(tf_key))
        x, y, w, h = tf.face
        cx, cy, cw, ch = tf.face_in_crop(size)
        return media_pb2.PrepareFaceResponse(
            crop_face_x=cx,
            crop_face_y=cy,
            crop_face_width=cw,
            crop_face_height=ch,
            crop=refs.to_ref(self.store, self.store.stat(crop_key)),
            transform=refs.to_ref(self.store, self.store.stat(tf_key)),
            face_x=x,
            face_y=y,
            face_width=w,
            face_height=h,
            metrics=self._metrics(t0, 1, hit),
        )

    @rpc_method(media_pb2.ProceduralMotionResponse)
    async def ProceduralMotion(self, request: media_pb2.ProceduralMotionRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._procedural, request)

    def _procedural(self, req: media_pb2.ProceduralMotionRequest) -> media_pb2.ProceduralMotionResponse:
        t0 = time.perf_counter()
        seg, fps = req.segment, req.fps or 25.0
        if seg.start < 0 or seg.end <= seg.start or seg.end - seg.start > 10_000:
            raise InvalidInput(
                f"segment [{seg.start}, {seg.end}) must be non-empty, start >= 0, <= 10000 frames"
            )
        mp = motion.preset(req.motion, req.seed, fps)  # an unknown preset: INVALID_ARGUMENT naming it
        src = refs.object_digest(self.store, req.face, "face")
        params = {"seed": req.seed, "fps": fps, "start": seg.start, "end": seg.end}
        if (req.motion or motion.DEFAULT_PRESET) != motion.DEFAULT_PRESET:
            params["motion"] = req.motion  # the default keeps the keys it had before presets existed
        key = cache_key(STAGE, stage_digest(f"{STAGE}.motion", "procedural-v1", params, [src]), "driver.lfp")
        hit = self.store.exists(key)
        if not hit:
            crop = unpack_frames(refs.fetch_bytes(self.store, req.face, "face")[0]).frames[0]
            frames = motion.drive(crop, seg.start, seg.end, mp)
            self.store.put_bytes(key, pack_frames(frames, fps=fps, start=seg.start))
        return media_pb2.ProceduralMotionResponse(
            pack=refs.to_ref(self.store, self.store.stat(key)),
            metrics=self._metrics(t0, seg.end - seg.start, hit),
        )

    @rpc_method(media_pb2.PasteBackResponse)
    async def PasteBack(self, request: media_pb2.PasteBackRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._paste_back, request)

    def _paste_back(self, req: media_pb2.PasteBackRequest) -> media_pb2.PasteBackResponse:
        t0 = time.perf_counter()
        ins = [
            refs.object_digest(self.store, r, w)
            for r, w in ((req.frames, "frames"), (req.image, "image"), (req.transform, "transform"))
        ]
        key = cache_key(STAGE, stage_digest(f"{STAGE}.paste", "feather-v1", {}, ins), "pasted.lfp")
        hit = self.store.exists(key)
        pack = None
        if not hit:
            pack = unpack_frames(refs.fetch_bytes(self.store, req.frames, "frames")[0])
            tf = face.CropTransform.from_json(refs.fetch_bytes(self.store, req.transform, "transform")[0])
            with self._tmp() as tmp:
                path, _ = refs.fetch(self.store, req.image, Path(tmp) / "image", "image")
                photo = media.load_image(path)
            out = face.paste_back(pack.frames, photo, tf)
            self.store.put_bytes(key, pack_frames(out, fps=pack.fps, start=pack.start))
        return media_pb2.PasteBackResponse(
            pack=refs.to_ref(self.store, self.store.stat(key)),
            metrics=self._metrics(t0, pack.count if pack else 0, hit),
        )
