"""MediaService through `lihq serve`: Serve's gRPC proxy on loopback + the rclone S3 server + ffmpeg."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lihq import media
from lihq.config import StoreConfig
from lihq.framepack import pack_frames, unpack_frames
from lihq.storage import open_store
from lihq.v1 import common_pb2, media_pb2, media_pb2_grpc
from tests.integration.conftest import internal_md
from tests.mediafiles import espeak_wav, lavfi_image, lavfi_video

pytestmark = pytest.mark.integration
APP = internal_md("media")  # stage calls carry the internal credential


@pytest.fixture(scope="module")
def store(serve_stack):
    return open_store(StoreConfig.from_env(serve_stack.env))


@pytest.fixture(scope="module")
def stub(serve_stack):
    with serve_stack.channel() as ch:
        yield media_pb2_grpc.MediaServiceStub(ch)


def put(store, tmp: Path, path: Path, key: str) -> common_pb2.ObjectRef:
    info = store.put_file(key, path)
    return common_pb2.ObjectRef(key=info.key, sha256=info.sha256 or "")


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as ei:
        call()
    return ei.value.code(), ei.value.details()


def test_health_and_reflection(serve_stack):
    with serve_stack.channel() as ch:
        r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), metadata=APP, timeout=30)
        assert r.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = next(
            iter(
                refl.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30
                )
            )
        )
        names = {s.name for s in resp.list_services_response.service}
        assert "lihq.v1.MediaService" in names


def test_ingest_stores_content_addressed_and_keeps_upload(stub, store, tmp_path):
    img = lavfi_image(tmp_path / "face.png")
    upload = put(store, tmp_path, img, "uploads/it/face.png")
    r = stub.Ingest(
        media_pb2.IngestRequest(upload=upload, kind=media_pb2.MEDIA_KIND_IMAGE, filename="face.png"),
        metadata=APP,
        timeout=60,
    )
    digest = hashlib.sha256(img.read_bytes()).hexdigest()
    assert r.input.key == f"inputs/{digest}.png"
    assert r.input.sha256 == digest
    assert (r.info.width, r.info.height) == (200, 160)
    assert store.get_bytes(r.input.key) == img.read_bytes()
    assert store.get_bytes("uploads/it/face.png") == img.read_bytes()  # the upload is untouched
    again = stub.Ingest(
        media_pb2.IngestRequest(upload=upload, kind=media_pb2.MEDIA_KIND_IMAGE), metadata=APP, timeout=60
    )
    assert again.already_present and again.input.key == r.input.key


def test_extract_audio_rates_and_cache(stub, store, tmp_path):
    wav = espeak_wav(tmp_path / "speech.wav")
    src = put(store, tmp_path, wav, "uploads/it/speech.wav")
    req = media_pb2.ExtractAudioRequest(source=src, sample_rates=[16000, 24000])
    r = stub.ExtractAudio(req, metadata=APP, timeout=120)
    dur = media.probe(wav).duration
    assert abs(r.duration_s - dur) < 0.05
    assert [t.sample_rate for t in r.tracks] == [16000, 24000]
    for t in r.tracks:
        assert t.wav.key.startswith("cache/media/") and t.wav.key.endswith(f"audio_{t.sample_rate}.wav")
        assert abs(t.samples - dur * t.sample_rate) < 0.05 * t.sample_rate
        local = tmp_path / f"out{t.sample_rate}.wav"
        store.get_file(t.wav.key, local)
        samples = media.decode_audio(local, t.sample_rate)
        assert abs(len(samples) - t.samples) <= 1 and float(np.sqrt(np.mean(samples**2))) > 0.01
    assert not r.metrics.cache_hit
    r2 = stub.ExtractAudio(req, metadata=APP, timeout=120)
    assert r2.metrics.cache_hit and [t.wav.key for t in r2.tracks] == [t.wav.key for t in r.tracks]
    assert [t.samples for t in r2.tracks] == [t.samples for t in r.tracks]


def test_cut_video_into_segment_packs(stub, store, tmp_path):
    vid = lavfi_video(tmp_path / "ref.mp4", seconds=4.0)
    ref = put(store, tmp_path, vid, "uploads/it/ref.mp4")
    r = stub.CutVideo(
        media_pb2.CutVideoRequest(
            video=ref, offset_s=1.0, duration_s=2.12, fps=25, width=128, height=128, segment_frames=50
        ),
        metadata=APP,
        timeout=120,
    )
    assert r.total_frames == 53 and r.fps == 25
    assert [(s.segment.start, s.segment.end) for s in r.segments] == [(0, 50), (50, 53)]
    packs = [unpack_frames(store.get_bytes(s.pack.key)) for s in r.segments]
    assert [p.start for p in packs] == [0, 50] and [p.count for p in packs] == [50, 3]
    assert packs[0].frames.shape[1:] == (128, 128, 3) and packs[0].frames.dtype == np.uint8
    assert not np.array_equal(packs[0].frames[0], packs[0].frames[10])  # testsrc2 moves


def test_encode_matches_audio_duration(stub, store, tmp_path):
    wav = espeak_wav(tmp_path / "speech.wav", "Short line for the encoder.")
    aud = put(store, tmp_path, wav, "uploads/it/enc.wav")
    dur = media.probe(wav).duration
    total = int(round(dur * 25))
    rng = np.random.default_rng(0)
    refs = []
    for s in range(0, total, 50):
        e = min(total, s + 50)
        frames = np.full((e - s, 64, 96, 3), 0, np.uint8)
        frames[..., 1] = rng.integers(60, 200)
        info = store.put_bytes(f"cache/test/enc/seg_{s}.lfp", pack_frames(frames, fps=25, start=s))
        refs.append(common_pb2.ObjectRef(key=info.key))
    r = stub.Encode(
        media_pb2.EncodeRequest(
            packs=refs,
            audio=aud,
            output_key="renders/it/output.mp4",  # a caller-chosen key: only under its render's prefix
            ctx=common_pb2.CallContext(render_id="it"),
        ),
        metadata=APP,
        timeout=300,
    )
    assert r.video.key == "renders/it/output.mp4"
    out = tmp_path / "out.mp4"
    store.get_file(r.video.key, out)
    info = media.probe(out, require_video=True, require_audio=True)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert (info.width, info.height) == (96, 64)
    assert abs(info.duration - dur) <= 1 / 25 + 1e-3


def test_bad_inputs_map_to_grpc_codes(stub, store, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG not really" + bytes(range(200)))
    bad = put(store, tmp_path, junk, "uploads/it/junk.png")
    code, details = code_of(
        lambda: stub.Ingest(
            media_pb2.IngestRequest(upload=bad, kind=media_pb2.MEDIA_KIND_IMAGE), metadata=APP, timeout=60
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details
    code, details = code_of(
        lambda: stub.Ingest(
            media_pb2.IngestRequest(upload=common_pb2.ObjectRef(key="../etc/passwd")),
            metadata=APP,
            timeout=60,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and ".." in details
    code, details = code_of(
        lambda: stub.ExtractAudio(
            media_pb2.ExtractAudioRequest(source=common_pb2.ObjectRef(key="uploads/it/does-not-exist.wav")),
            metadata=APP,
            timeout=60,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND and "does-not-exist" in details
    vid = lavfi_video(tmp_path / "short.mp4", seconds=1.0)
    ref = put(store, tmp_path, vid, "uploads/it/short.mp4")
    code, details = code_of(
        lambda: stub.CutVideo(
            media_pb2.CutVideoRequest(video=ref, offset_s=0.5, duration_s=2.0), metadata=APP, timeout=60
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "lasts" in details
    code, details = code_of(
        lambda: stub.Encode(
            media_pb2.EncodeRequest(
                packs=[common_pb2.ObjectRef(key="uploads/it/junk.png")], output_key="inputs/x.mp4"
            ),
            metadata=APP,
            timeout=60,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
