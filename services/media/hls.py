"""HLS segments of the final video (issue #18): one MPEG-TS file per plan segment, H.264 + AAC.

A segment k covers [start_s, end_s) of the render's timeline (the plan's 25 fps segment bounds, the
last one cut to the render's duration). Its video is the segment's frame pack, held or cut to
frame_count(end_s) - frame_count(start_s) frames (the same rounding as the mp4 encode, so the segments'
frames add up to the mp4's); its audio is the speech's samples of exactly that range (silence past
the speech's end). `-output_ts_offset start_s` stamps the segment on the render's clock, so a player
appending segment after segment sees continuous timestamps and the audio cannot drift from the video:
each segment starts on an IDR frame and its own AAC stream (whose 1024 priming samples precede start_s
by ~21 ms at 48 kHz and overlap the previous segment's tail: a seam, never an accumulating offset).

`encode_segment` is the local-file work; `HlsMixin.EncodeSegment` is the MediaService RPC
(content-addressed in the cache, and copied to `renders/<id>/hls/<name>.ts` when asked).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from lihq.cache import cache_key, stage_digest
from lihq.errors import InvalidInput
from lihq.framepack import unpack_frames
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.log import stage_logger
from lihq.media._ff import ff_url, ffmpeg_argv, rational
from lihq.media.encode import check_preset, run_encoder
from lihq.media.video import frame_count
from lihq.v1 import media_pb2

AUDIO_RATE = 48000
AUDIO_BITRATE = "192k"
DEFAULT_PRESET = "veryfast"  # a segment must be playable soon; the mp4 keeps its own preset
TS_CONTENT_TYPE = "video/mp2t"
# every segment's timestamps are start_s + TS_OFFSET_S: a constant lead so that no segment (the first
# included) has negative timestamps for the muxer to shift (B-frame delay, AAC priming), which would move
# segment 0 alone and break continuity. Players start at the first segment's timestamp.
TS_OFFSET_S = 1.0


def segment_frames(start_s: float, end_s: float, fps: float) -> int:
    """Frames of [start_s, end_s) at fps: the mp4's rule (frame_count of the end minus of the start)."""
    return frame_count(end_s, fps) - frame_count(start_s, fps) if start_s > 0 else frame_count(end_s, fps)


def check_range(start_s: float, end_s: float) -> None:
    if not (math.isfinite(start_s) and start_s >= 0):
        raise InvalidInput(f"start_s={start_s}: must be a finite number >= 0")
    if not (math.isfinite(end_s) and end_s > start_s):
        raise InvalidInput(f"end_s={end_s}: must be a finite number > start_s ({start_s})")


def _even(f: np.ndarray) -> np.ndarray:
    h, w = f.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return np.ascontiguousarray(f)
    return np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _command(
    size: tuple[int, int],
    fps: float,
    out: Path,
    audio: Path,
    start_s: float,
    dur: float,
    crf: int,
    preset: str,
) -> list[str]:
    w, h = size
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=rational(fps))
    video = video.filter("scale", out_color_matrix="bt709", flags="accurate_rnd+full_chroma_int")
    video = video.filter("format", "yuv420p")
    # sample-exact range of the WAV (input seeking in PCM is exact), padded with silence to `dur`
    a = ffmpeg.input(ff_url(audio), ss=f"{start_s:.6f}", t=f"{dur:.6f}")["a:0"]
    a = a.filter("aresample", AUDIO_RATE).filter("apad", whole_dur=f"{dur:.6f}")
    a = a.filter("atrim", duration=f"{dur:.6f}")
    node = ffmpeg.output(
        video,
        a,
        ff_url(out),
        vcodec="libx264",
        crf=crf,
        preset=preset,
        colorspace="bt709",
        color_primaries="bt709",
        color_trc="bt709",
        color_range="tv",
        acodec="aac",
        audio_bitrate=AUDIO_BITRATE,
        ac=1,
        output_ts_offset=f"{start_s + TS_OFFSET_S:.6f}",
        muxdelay=0,
        muxpreload=0,
        format="mpegts",
    ).overwrite_output()
    return ffmpeg_argv(node)


def encode_segment(
    frames: Iterable[np.ndarray],
    fps: float,
    out_path: str | Path,
    audio_path: str | Path,
    start_s: float,
    end_s: float,
    crf: int = 18,
    preset: str = DEFAULT_PRESET,
) -> Path:
    """Encode one HLS segment (MPEG-TS) of [start_s, end_s): the frames held or cut to the range's
    frame count, the audio of that range, timestamps from start_s. Written atomically."""
    check_range(start_s, end_s)
    if not fps > 0:
        raise InvalidInput(f"fps must be > 0, got {fps}")
    if not 0 <= crf <= 51:
        raise InvalidInput(f"crf={crf}: must be in [0, 51]")
    check_preset(preset)  # the one x264 preset table (lihq/media/encode.py)
    out = Path(out_path)
    n = max(1, segment_frames(start_s, end_s, fps))
    picked: list[np.ndarray] = []
    for f in frames:
        if len(picked) >= n:
            break
        arr = np.asarray(f)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise InvalidInput(
                f"frame {len(picked)}: expected (H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}"
            )
        picked.append(_even(arr))
    if not picked:
        raise InvalidInput("no frames to encode")
    size = (picked[0].shape[1], picked[0].shape[0])
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.partial{out.suffix}")
    cmd = _command(size, fps, tmp, Path(audio_path), start_s, end_s - start_s, int(crf), preset)

    def feed(proc) -> None:
        try:
            for i in range(n):  # the last frame held when the pack is short
                proc.stdin.write(memoryview(picked[min(i, len(picked) - 1)]).cast("B"))
        except BrokenPipeError:
            pass

    return run_encoder(cmd, tmp, out, feed, f"the HLS segment {out.name}")


class HlsMixin:
    """MediaService.EncodeSegment; mixed into MediaServicer (uses its store, _tmp and _metrics)."""

    store: Any

    @rpc_method(media_pb2.EncodeSegmentResponse)
    async def EncodeSegment(self, request: media_pb2.EncodeSegmentRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._encode_segment, request)

    def _encode_segment(self, req: media_pb2.EncodeSegmentRequest) -> media_pb2.EncodeSegmentResponse:
        t0 = time.perf_counter()
        check_range(req.start_s, req.end_s)
        crf = req.crf or 18
        preset = req.preset or DEFAULT_PRESET
        check_preset(preset)
        if not 0 <= crf <= 51:
            raise InvalidInput(f"crf={crf}: must be in [0, 51]")
        if not req.audio.key:
            raise InvalidInput("audio: an HLS segment needs the speech")
        pack_digest = refs.object_digest(self.store, req.pack, "pack")
        audio_digest = refs.object_digest(self.store, req.audio, "audio")
        params = {"start": req.start_s, "end": req.end_s, "crf": crf, "preset": preset, "rate": AUDIO_RATE}
        digest = stage_digest("media.hls", "ffmpeg", params, [pack_digest, audio_digest])
        cached = cache_key("media", digest, "segment.ts")
        out_key = hls_output_key(req.output_key, req.ctx.render_id, cached)
        hit = self.store.exists(cached)
        with self._tmp() as tmp:
            path = Path(tmp) / "segment.ts"
            if hit:
                self.store.get_file(cached, path)
            else:
                pack = unpack_frames(refs.fetch_bytes(self.store, req.pack, "pack")[0])
                audio, _ = refs.fetch(self.store, req.audio, Path(tmp) / "audio", "audio")
                encode_segment(pack.frames, pack.fps, path, audio, req.start_s, req.end_s, crf, preset)
                self.store.put_file(cached, path, TS_CONTENT_TYPE)
            stored = self.store.put_file(out_key, path, TS_CONTENT_TYPE) if out_key != cached else None
        stored = stored or self.store.stat(cached)
        stage_logger("media", render_id=req.ctx.render_id).info(
            "HLS segment [%.3f, %.3f) s -> %s (%s)",
            req.start_s,
            req.end_s,
            out_key,
            "cached" if hit else "new",
        )
        return media_pb2.EncodeSegmentResponse(
            segment=refs.to_ref(self.store, stored),
            duration_s=req.end_s - req.start_s,
            metrics=self._metrics(t0, 0, hit),
        )


def hls_output_key(requested: str, render_id: str, default: str) -> str:
    """`renders/<ctx.render_id>/hls/<name>.ts` when asked for (the render's own prefix only: a stage never
    writes over uploads, caches or another render's files), else the content-addressed default."""
    return refs.render_output_key(requested, render_id, default, subdir="hls", suffix=".ts")
