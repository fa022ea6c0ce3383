"""HLS segments (services/media/hls.py): timestamps continuous across segments, per-segment audio and
video durations, the segments adding up to the mp4, and the EncodeSegment RPC (cache, output key)."""

from __future__ import annotations

import json
import subprocess

import grpc
import numpy as np
import pytest

from lihq.framepack import pack_frames
from lihq.media.encode import encode_video
from lihq.storage import FileStore
from lihq.v1 import common_pb2, media_pb2, media_pb2_grpc
from orchestrator.hls import Playlist, segment_duration
from services.media.hls import TS_OFFSET_S, encode_segment
from services.media.servicer import MediaServicer
from tests.plaingrpc import plain_server

FPS = 25.0
DURATION = 2.3  # 58 frames: segments of 20, 20, 18
SEG = 20


def _streams(path) -> dict[str, dict]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,start_time,duration",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def _duration(path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("hls")
    wav = d / "speech.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=440:d={DURATION}",
            "-ar",
            "22050",
            str(wav),
        ],
        check=True,
    )
    n = int(DURATION * FPS + 0.5)
    frames = np.stack([np.full((48, 64, 3), (i * 4) % 256, np.uint8) for i in range(n)])
    return d, wav, frames


def test_segments_are_continuous_and_add_up_to_the_mp4(clip):
    d, wav, frames = clip
    n = len(frames)
    bounds = [(s, min(n, s + SEG)) for s in range(0, n, SEG)]
    pl = Playlist(len(bounds), SEG / FPS)
    for k, (s, e) in enumerate(bounds):
        start_s, end_s = s / FPS, min(e / FPS, DURATION)
        encode_segment(frames[s:e], FPS, d / f"seg_{k:05d}.ts", wav, start_s, end_s)
        pl.add(k, segment_duration(s, e, DURATION))
    (d / "index.m3u8").write_text(pl.text(ended=True))
    expect_v = 0.0
    for k, (s, e) in enumerate(bounds):
        st = _streams(d / f"seg_{k:05d}.ts")
        v, a = st["video"], st["audio"]
        assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
        # each segment starts where the previous ended on one clock: no drift between segments
        assert float(v["start_time"]) == pytest.approx(expect_v + TS_OFFSET_S, abs=1e-3)
        assert int(v["nb_read_frames"]) == e - s
        seg_s = (e - s) / FPS
        assert float(v["duration"]) == pytest.approx(seg_s, abs=1e-3)
        # the audio is the same range: it starts one AAC frame of priming early and lasts the range
        # rounded up to whole AAC frames (priming + padding: under two frames of 1024 samples)
        aac = 1024 / 48000
        assert float(a["start_time"]) == pytest.approx(expect_v + TS_OFFSET_S - aac, abs=1e-3)
        assert seg_s <= float(a["duration"]) <= seg_s + 2 * aac + 1e-3
        expect_v += seg_s
    mp4 = encode_video(frames, FPS, d / "out.mp4", audio_path=wav)
    assert _duration(d / "index.m3u8") == pytest.approx(_duration(mp4), abs=0.05)


def test_a_short_pack_is_held_and_a_long_one_cut(clip):
    d, wav, frames = clip
    encode_segment(frames[:5], FPS, d / "held.ts", wav, 0.0, 0.4)  # 10 frames wanted
    assert int(_streams(d / "held.ts")["video"]["nb_read_frames"]) == 10
    encode_segment(frames[:20], FPS, d / "cut.ts", wav, 0.0, 0.4)
    assert int(_streams(d / "cut.ts")["video"]["nb_read_frames"]) == 10


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    store = FileStore(tmp_path_factory.mktemp("plainhls") / "store", "lihq")
    with plain_server(MediaServicer(store), [media_pb2.DESCRIPTOR.services_by_name["MediaService"]]) as ch:
        yield media_pb2_grpc.MediaServiceStub(ch), store


def test_encode_segment_rpc_writes_next_to_the_playlist_and_caches(plain, clip):
    stub, store = plain
    _, wav, frames = clip
    pack = store.put_bytes("cache/test/p0.lfp", pack_frames(frames[:SEG], fps=FPS, start=0))
    audio = store.put_file("inputs/speech.wav", wav)
    ctx = common_pb2.CallContext(render_id="0123456789abcdef")
    req = media_pb2.EncodeSegmentRequest(
        pack=common_pb2.ObjectRef(key=pack.key),
        audio=common_pb2.ObjectRef(key=audio.key),
        start_s=0.0,
        end_s=SEG / FPS,
        output_key="renders/0123456789abcdef/hls/seg_00000.ts",
        ctx=ctx,
    )
    a = stub.EncodeSegment(req)
    assert a.segment.key == "renders/0123456789abcdef/hls/seg_00000.ts" and not a.metrics.cache_hit
    assert a.duration_s == pytest.approx(SEG / FPS)
    b = stub.EncodeSegment(req)
    assert b.metrics.cache_hit and store.get_bytes(a.segment.key)[:1] == b"G"  # MPEG-TS sync byte


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"output_key": "renders/0123456789abcdef/output.mp4"}, "output_key"),
        ({"output_key": "renders/other/hls/seg_00000.ts"}, "output_key"),
        ({"output_key": "inputs/x.ts"}, "output_key"),
        ({"end_s": 0.0}, "end_s"),
        ({"start_s": -1.0}, "start_s"),
        ({"preset": "warp"}, "preset"),
    ],
)
def test_encode_segment_validation(plain, clip, change, needle):
    stub, store = plain
    _, wav, frames = clip
    pack = store.put_bytes("cache/test/p1.lfp", pack_frames(frames[:SEG], fps=FPS, start=0))
    audio = store.put_file("inputs/speech.wav", wav)
    fields = {
        "pack": common_pb2.ObjectRef(key=pack.key),
        "audio": common_pb2.ObjectRef(key=audio.key),
        "start_s": 0.0,
        "end_s": 0.8,
        "ctx": common_pb2.CallContext(render_id="0123456789abcdef"),
    } | change
    with pytest.raises(grpc.RpcError) as e:
        stub.EncodeSegment(media_pb2.EncodeSegmentRequest(**fields))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in e.value.details()
