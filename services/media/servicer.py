"""MediaService logic: fetch objects -> MediaRunner -> put objects (docs/architecture.md §3).

Transport-free: the Ray Serve deployment (deployment.py) subclasses this, and `lihq.grpc.server`
can host it on a plain grpc.aio server. Blocking work (ffmpeg, storage) runs in a worker thread so
one replica can keep several calls in flight.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lihq import media
from lihq.cache import cache_key, stage_digest
from lihq.errors import InvalidInput
from lihq.framepack import unpack_frames
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.grpc.health import HealthMixin
from lihq.log import stage_logger
from lihq.storage.base import ObjectStore, content_key
from lihq.v1 import common_pb2, media_pb2
from services.media.face_rpcs import FaceRpcsMixin
from services.media.hls import HlsMixin
from services.media.runner import MediaRunner, n_frames_for, segment_bounds
from services.media.video_servicer import FaceVideoMixin

STAGE = "media"
MODEL_ID = "ffmpeg"
_KIND = {
    media_pb2.MEDIA_KIND_UNSPECIFIED: "any",
    media_pb2.MEDIA_KIND_IMAGE: "image",
    media_pb2.MEDIA_KIND_AUDIO: "audio",
    media_pb2.MEDIA_KIND_VIDEO: "video",
}
_EXT = re.compile(r"\.([A-Za-z0-9]{1,10})$")
_PROTECTED_PREFIXES = ("inputs/",)


def info_to_proto(info: media.MediaInfo) -> common_pb2.MediaInfo:
    return common_pb2.MediaInfo(
        format_name=info.format_name or "",
        duration_s=float(info.duration or 0.0),
        size_bytes=int(info.size_bytes or 0),
        has_video=bool(info.has_video),
        has_audio=bool(info.has_audio),
        width=int(info.width or 0),
        height=int(info.height or 0),
        fps=float(info.fps or 0.0),
        n_frames=int(info.n_frames or 0),
        video_codec=info.video_codec or "",
        audio_codec=info.audio_codec or "",
        audio_rate=int(info.audio_rate or 0),
        audio_channels=int(info.audio_channels or 0),
        rotation=int(info.rotation or 0),
    )


def wav_sample_count(head: bytes) -> int:
    """Frames in a mono WAV from its first bytes: walk the RIFF chunks to `data` (PCM16 or float32)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise InvalidInput("not a WAV file")
    pos, block_align = 12, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"fmt ":
            block_align = int.from_bytes(head[pos + 20 : pos + 22], "little")
        elif cid == b"data":
            if not block_align:
                raise InvalidInput("WAV without a fmt chunk before its data")
            return size // block_align
        pos += 8 + size + (size & 1)
    raise InvalidInput("WAV header: no data chunk in the first bytes")


def _ext_for(filename: str, key: str, info: media.MediaInfo) -> str:
    for name in (filename, key):
        m = _EXT.search(name or "")
        if m:
            return m.group(1).lower()
    return (info.format_name or "bin").split(",")[0][:10].lower()


class MediaServicer(FaceRpcsMixin, HlsMixin, FaceVideoMixin, HealthMixin):
    def __init__(
        self, store: ObjectStore, runner: MediaRunner | None = None, workdir: Path | None = None
    ) -> None:
        self.store = store
        self.runner = runner or MediaRunner()
        self.workdir = workdir

    def _tmp(self) -> tempfile.TemporaryDirectory:
        return tempfile.TemporaryDirectory(prefix="lihq-media-", dir=self.workdir)

    def _metrics(self, t0: float, frames: int = 0, cache_hit: bool = False) -> common_pb2.StageMetrics:
        return common_pb2.StageMetrics(
            wall_s=time.perf_counter() - t0,
            frames=frames,
            cache_hit=cache_hit,
            model_id=MODEL_ID,
            device="cpu",
        )

    # -- Ingest -------------------------------------------------------------------------------
    @rpc_method(media_pb2.IngestResponse)
    async def Ingest(
        self, request: media_pb2.IngestRequest, grpc_context: Any = None
    ) -> media_pb2.IngestResponse:  # noqa: N802
        return await asyncio.to_thread(self._ingest, request)

    def _ingest(self, req: media_pb2.IngestRequest) -> media_pb2.IngestResponse:
        kind = _KIND.get(req.kind)
        if kind is None:
            raise InvalidInput(f"unknown media kind {req.kind}")
        log = stage_logger(STAGE, render_id=req.ctx.render_id)
        with self._tmp() as tmp:
            path, digest = refs.fetch(self.store, req.upload, Path(tmp) / "upload", "upload")
            info = self.runner.probe_upload(path, kind)
            key = content_key("inputs", digest, _ext_for(req.filename, req.upload.key, info))
            present = self.store.exists(key)
            stored = self.store.stat(key) if present else self.store.put_file(key, path)
        log.info("ingested %s as %s (%s)", req.upload.key, key, "cached" if present else "new")
        return media_pb2.IngestResponse(
            input=refs.to_ref(self.store, stored), info=info_to_proto(info), already_present=present
        )

    # -- ExtractAudio -------------------------------------------------------------------------
    @rpc_method(media_pb2.ExtractAudioResponse)
    async def ExtractAudio(self, request: media_pb2.ExtractAudioRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._extract_audio, request)

    def _extract_audio(self, req: media_pb2.ExtractAudioRequest) -> media_pb2.ExtractAudioResponse:
        t0 = time.perf_counter()
        rates = self.runner.check_rates(req.sample_rates)
        duration = req.duration_s if req.duration_s > 0 else None
        if req.duration_s < 0 or req.start_s < 0:
            raise InvalidInput("start_s and duration_s must be >= 0")
        src = refs.object_digest(self.store, req.source, "source")
        params = {"rates": list(rates), "start": req.start_s, "duration": req.duration_s}
        digest = stage_digest(f"{STAGE}.audio", MODEL_ID, params, [src])
        keys = {r: cache_key(STAGE, digest, f"audio_{r}.wav") for r in rates}
        if all(self.store.exists(k) for k in keys.values()):
            tracks = [self._track(r, self.store.stat(k)) for r, k in keys.items()]
            return media_pb2.ExtractAudioResponse(
                tracks=tracks,
                duration_s=tracks[0].samples / rates[0],
                metrics=self._metrics(t0, cache_hit=True),
            )
        with self._tmp() as tmp:
            path, _ = refs.fetch(self.store, req.source, Path(tmp) / "source", "source")
            audio = self.runner.extract_audio(path, rates, req.start_s, duration)
            tracks = []
            for r, samples in audio.items():
                wav = self.runner.write_wav(Path(tmp) / f"audio_{r}.wav", samples, r)
                tracks.append(self._track(r, self.store.put_file(keys[r], wav), len(samples)))
        stage_logger(STAGE, render_id=req.ctx.render_id).info(
            "extracted audio at %s Hz from %s", list(rates), req.source.key
        )
        return media_pb2.ExtractAudioResponse(
            tracks=tracks, duration_s=tracks[0].samples / rates[0], metrics=self._metrics(t0)
        )

    def _track(self, rate: int, info: Any, samples: int | None = None) -> media_pb2.AudioTrack:
        if samples is None:  # cache hit: read the count from the WAV header, not the whole file
            head = next(self.store.iter_chunks(info.key, 4096), b"")
            samples = wav_sample_count(head)
        return media_pb2.AudioTrack(sample_rate=rate, wav=refs.to_ref(self.store, info), samples=int(samples))

    # -- CutVideo -----------------------------------------------------------------------------
    @rpc_method(media_pb2.CutVideoResponse)
    async def CutVideo(self, request: media_pb2.CutVideoRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._cut_video, request)

    def _cut_video(self, req: media_pb2.CutVideoRequest) -> media_pb2.CutVideoResponse:
        t0 = time.perf_counter()
        fps = req.fps or 25.0
        size = (req.width or 256, req.height or 256)
        seg = req.segment_frames or 50
        self.runner.check_cut(req.offset_s, req.duration_s, fps, size, seg)
        src = refs.object_digest(self.store, req.video, "video")
        params = {
            "offset": req.offset_s,
            "duration": req.duration_s,
            "fps": fps,
            "size": list(size),
            "seg": seg,
        }
        digest = stage_digest(f"{STAGE}.cut", MODEL_ID, params, [src])
        total = n_frames_for(req.duration_s, fps)
        bounds = segment_bounds(total, seg)
        keys = [cache_key(STAGE, digest, f"seg_{s:06d}_{e:06d}.lfp") for s, e in bounds]
        hit = all(self.store.exists(k) for k in keys)
        if not hit:
            with self._tmp() as tmp:
                path, _ = refs.fetch(self.store, req.video, Path(tmp) / "video", "video")
                for cut in self.runner.cut_video(path, req.offset_s, req.duration_s, fps, size, seg):
                    self.store.put_bytes(keys[cut.index], cut.data, "application/x-lihq-framepack")
        stage_logger(STAGE, render_id=req.ctx.render_id).info(
            "cut %s: %d frames in %d segments (%s)",
            req.video.key,
            total,
            len(bounds),
            "cached" if hit else "new",
        )
        segments = [
            common_pb2.SegmentPack(
                segment=common_pb2.Segment(index=i, start=s, end=e),
                pack=refs.to_ref(self.store, self.store.stat(k)),
            )
            for i, ((s, e), k) in enumerate(zip(bounds, keys, strict=True))
        ]
        return media_pb2.CutVideoResponse(
            segments=segments, total_frames=total, fps=fps, metrics=self._metrics(t0, total, hit)
        )

    # -- Encode -------------------------------------------------------------------------------
    @rpc_method(media_pb2.EncodeResponse)
    async def Encode(self, request: media_pb2.EncodeRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._encode, request)

    def _encode(self, req: media_pb2.EncodeRequest) -> media_pb2.EncodeResponse:
        t0 = time.perf_counter()
        crf = req.crf or 18
        preset = req.preset or "medium"
        if not req.packs:
            raise InvalidInput("no frame packs to encode")
        pack_digests = [refs.object_digest(self.store, p, f"pack {i}") for i, p in enumerate(req.packs)]
        audio_digest = refs.object_digest(self.store, req.audio, "audio") if req.audio.key else ""
        if req.duration_s < 0:
            raise InvalidInput(f"duration_s={req.duration_s}: must be >= 0 (0: the audio's length)")
        params = {"crf": crf, "preset": preset, "duration": req.duration_s}
        digest = stage_digest(f"{STAGE}.encode", MODEL_ID, params, [*pack_digests, audio_digest])
        out_key = self._output_key(req.output_key, digest, req.ctx.render_id)
        with self._tmp() as tmp:
            headers = [
                unpack_frames(refs.fetch_bytes(self.store, p, f"pack {i}")[0])
                for i, p in enumerate(req.packs)
            ]
            self.runner.check_contiguous(headers)
            fps = headers[0].fps
            del headers
            audio_path = None
            if req.audio.key:
                audio_path, _ = refs.fetch(self.store, req.audio, Path(tmp) / "audio", "audio")
            out = Path(tmp) / "output.mp4"
            info = self.runner.encode(
                self._frames(req.packs), fps, out, audio_path, crf, preset, req.duration_s
            )
            stored = self.store.put_file(out_key, out, "video/mp4")
        stage_logger(STAGE, render_id=req.ctx.render_id).info(
            "encoded %d packs -> %s (%.3f s)", len(req.packs), out_key, info.duration
        )
        return media_pb2.EncodeResponse(
            video=refs.to_ref(self.store, stored),
            info=info_to_proto(info),
            metrics=self._metrics(t0, info.n_frames),
        )

    def _frames(self, packs: Any) -> Iterator[np.ndarray]:
        """Stream frames pack by pack, so only one segment is in memory at a time."""
        for i, p in enumerate(packs):
            pack = unpack_frames(refs.fetch_bytes(self.store, p, f"pack {i}")[0])
            yield from pack.frames

    def _output_key(self, requested: str, digest: str, render_id: str = "") -> str:
        return refs.render_output_key(requested, render_id, cache_key(STAGE, digest, "output.mp4"))
