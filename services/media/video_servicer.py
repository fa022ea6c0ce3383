"""FaceVideoFrames / FaceVideoCrop / FaceVideoPaste RPCs of MediaService: dubbing a face video (issue #15).

The pure work lives in services/media/video_face.py. Each segment call reads only its own range of
the video; the video file itself is fetched once per replica into a small local cache keyed by its
content digest (inputs are content-addressed and never change), so a long video is not downloaded
again for every segment.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from lihq.cache import cache_key, stage_digest
from lihq.errors import InvalidInput
from lihq.framepack import pack_frames, unpack_frames
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.log import stage_logger
from lihq.storage.base import ObjectStore
from lihq.v1 import common_pb2, media_pb2
from services.media import video_face

STAGE = "media"
MODEL_ID = "ffmpeg"
PACK_TYPE = "application/x-lihq-framepack"
MAX_SAMPLES = 64
KEEP_VIDEOS = 4  # face videos kept in a replica's local cache
_cache_lock = threading.Lock()


class FaceVideoMixin:
    """Needs `store`, `workdir` and `_metrics()` from the class it is mixed into (MediaServicer)."""

    store: ObjectStore
    workdir: Path | None

    def _metrics(self, t0: float, frames: int = 0, cache_hit: bool = False) -> common_pb2.StageMetrics: ...

    def _local_video(self, ref: common_pb2.ObjectRef) -> tuple[Path, str]:
        digest = refs.object_digest(self.store, ref, "video")
        root = Path(self.workdir or tempfile.gettempdir()) / "lihq-face-videos"
        root.mkdir(parents=True, exist_ok=True)
        path = root / digest
        if not path.exists():
            part = root / f".{digest}.{uuid.uuid4().hex[:8]}"
            try:
                refs.fetch(self.store, ref, part, "video")
                os.replace(part, path)
            finally:
                part.unlink(missing_ok=True)
            with _cache_lock:  # keep the newest few
                old = sorted(
                    (p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime
                )
                for p in old[:-KEEP_VIDEOS]:
                    p.unlink(missing_ok=True)
        path.touch()
        return path, digest

    # -- FaceVideoFrames ----------------------------------------------------------------------
    @rpc_method(media_pb2.FaceVideoFramesResponse)
    async def FaceVideoFrames(self, request: media_pb2.FaceVideoFramesRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._face_video_frames, request)

    def _face_video_frames(self, req: media_pb2.FaceVideoFramesRequest) -> media_pb2.FaceVideoFramesResponse:
        t0 = time.perf_counter()
        start, end, sample = req.segment.start, req.segment.end, req.sample
        if sample < 0 or sample > MAX_SAMPLES:
            raise InvalidInput(f"sample={sample}: must be in [0, {MAX_SAMPLES}]")
        if not sample and not 0 <= start < end:
            raise InvalidInput(f"segment [{start}, {end}): need 0 <= start < end (or sample > 0)")
        path, digest = self._local_video(req.video)
        src = video_face.source_info(path)
        params = {"sample": sample} if sample else {"segment": [start, end]}
        key = cache_key(
            STAGE,
            stage_digest(f"{STAGE}.face_video", MODEL_ID, params, [digest]),
            "samples.lfp" if sample else f"seg_{start:06d}_{end:06d}.lfp",
        )
        hit = self.store.exists(key)
        if not hit:
            if sample:
                frames = video_face.read_samples(path, src, sample)
            else:
                frames = video_face.read_segment(path, src, start, end)
            self.store.put_bytes(
                key, pack_frames(frames, fps=src.fps, start=0 if sample else start), PACK_TYPE
            )
            width, height, n = frames.shape[2], frames.shape[1], len(frames)
        else:
            head = unpack_frames(self.store.get_bytes(key))
            width, height, n = head.width, head.height, head.count
        stage_logger(STAGE, render_id=req.ctx.render_id, segment=req.segment.index).info(
            "face video %s: %d frames %s (%s)",
            req.video.key,
            n,
            f"sampled of {src.frames}" if sample else f"[{start}, {end})",
            "cached" if hit else "new",
        )
        return media_pb2.FaceVideoFramesResponse(
            pack=refs.to_ref(self.store, self.store.stat(key)),
            fps=src.fps,
            width=width,
            height=height,
            source_frames=src.frames,
            metrics=self._metrics(t0, n, hit),
        )

    # -- FaceVideoCrop / FaceVideoPaste -------------------------------------------------------
    @rpc_method(media_pb2.FaceVideoCropResponse)
    async def FaceVideoCrop(self, request: media_pb2.FaceVideoCropRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._face_video_crop, request, False)

    @rpc_method(media_pb2.FaceVideoCropResponse)
    async def FaceVideoPaste(self, request: media_pb2.FaceVideoCropRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._face_video_crop, request, True)

    def _face_video_crop(
        self, req: media_pb2.FaceVideoCropRequest, paste: bool
    ) -> media_pb2.FaceVideoCropResponse:
        from services.wav2lip.objects import FaceTrack  # the track's format (a plain npz data class)

        t0 = time.perf_counter()
        size = req.crop_size or video_face.CROP_SIZE
        if not 64 <= size <= 1024:
            raise InvalidInput(f"crop_size={size}: must be in [64, 1024]")
        if paste and not req.restored.key:
            raise InvalidInput("restored: the restored crops are required to paste")
        inputs = [
            refs.object_digest(self.store, req.frames, "frames"),
            refs.object_digest(self.store, req.track, "track"),
        ]
        if paste:
            inputs.append(refs.object_digest(self.store, req.restored, "restored"))
        op = "paste" if paste else "crop"
        digest = stage_digest(f"{STAGE}.face_video_{op}", MODEL_ID, {"size": size}, inputs)
        pack = unpack_frames(refs.fetch_bytes(self.store, req.frames, "frames")[0])
        key = cache_key(STAGE, digest, f"{op}_{pack.start:06d}_{pack.end:06d}.lfp")
        hit = self.store.exists(key)
        if not hit:
            track = FaceTrack.from_bytes(refs.fetch_bytes(self.store, req.track, "track")[0], "track")
            boxes = track.boxes_for(pack.start, pack.count)
            if paste:
                restored = unpack_frames(refs.fetch_bytes(self.store, req.restored, "restored")[0])
                if (restored.start, restored.count) != (pack.start, pack.count):
                    raise InvalidInput(
                        f"restored holds frames [{restored.start}, {restored.end}), the frames [{pack.start}, {pack.end})"
                    )
                lo = pack.start - track.start
                detected = track.detected[lo : lo + pack.count]
                frames = video_face.paste_faces(pack.frames, restored.frames, boxes, detected, size)
            else:
                frames = video_face.crop_faces(pack.frames, boxes, size)
            self.store.put_bytes(key, pack_frames(frames, fps=pack.fps, start=pack.start), PACK_TYPE)
        stage_logger(STAGE, render_id=req.ctx.render_id).info(
            "face video %s of frames [%d, %d) (%s)", op, pack.start, pack.end, "cached" if hit else "new"
        )
        return media_pb2.FaceVideoCropResponse(
            pack=refs.to_ref(self.store, self.store.stat(key)), metrics=self._metrics(t0, pack.count, hit)
        )
