"""MediaServicer on a plain grpc.aio server over the filesystem store: the stage logic without Ray.

The integration suite runs the same servicer behind Serve's gRPC proxy on the S3 server; this one is
fast and covers the edges (cache keys, validation, health + reflection of the plain host).
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lihq.framepack import pack_frames, unpack_frames
from lihq.storage import FileStore
from lihq.v1 import common_pb2, media_pb2, media_pb2_grpc
from services.media.servicer import MediaServicer, wav_sample_count
from tests.mediafiles import espeak_wav, lavfi_video
from tests.plaingrpc import plain_server


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """(stub, channel, store) for a MediaServicer on a plain grpc.aio server over a FileStore."""
    store = FileStore(tmp_path_factory.mktemp("plain") / "store", "lihq")
    with plain_server(MediaServicer(store), [media_pb2.DESCRIPTOR.services_by_name["MediaService"]]) as ch:
        yield media_pb2_grpc.MediaServiceStub(ch), ch, store


def test_plain_server_health(plain):
    _, ch, _ = plain
    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="lihq.v1.MediaService"))
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_cut_is_content_addressed_and_cached(plain, tmp_path):
    stub, _, store = plain
    vid = lavfi_video(tmp_path / "v.mp4", seconds=2.0, size="64x48", rate=25)
    info = store.put_file("uploads/v.mp4", vid)
    req = media_pb2.CutVideoRequest(
        video=common_pb2.ObjectRef(key=info.key), duration_s=1.0, width=32, height=32, segment_frames=10
    )
    a = stub.CutVideo(req)
    b = stub.CutVideo(req)
    assert [s.pack.key for s in a.segments] == [s.pack.key for s in b.segments]
    assert not a.metrics.cache_hit and b.metrics.cache_hit
    other = stub.CutVideo(
        media_pb2.CutVideoRequest(
            video=req.video, duration_s=1.0, width=32, height=32, segment_frames=10, offset_s=0.4
        )
    )
    assert other.segments[0].pack.key != a.segments[0].pack.key  # parameters are part of the key
    frames = np.concatenate([unpack_frames(store.get_bytes(s.pack.key)).frames for s in a.segments])
    assert frames.shape == (25, 32, 32, 3)


def test_sha_mismatch_is_invalid_argument(plain, tmp_path):
    stub, _, store = plain
    wav = espeak_wav(tmp_path / "s.wav", "hi")
    info = store.put_file("uploads/s.wav", wav)
    with pytest.raises(grpc.RpcError) as ei:
        stub.ExtractAudio(
            media_pb2.ExtractAudioRequest(source=common_pb2.ObjectRef(key=info.key, sha256="0" * 64))
        )
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sha256" in ei.value.details()


@pytest.mark.parametrize(
    "req, code, needle",
    [
        (
            media_pb2.ExtractAudioRequest(
                source=common_pb2.ObjectRef(key="uploads/s.wav"), sample_rates=[12345]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "sample rate",
        ),
        (
            media_pb2.ExtractAudioRequest(source=common_pb2.ObjectRef(key="/abs/s.wav")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "relative",
        ),
        (
            media_pb2.ExtractAudioRequest(source=common_pb2.ObjectRef(key="uploads/s.wav", bucket="other")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "bucket",
        ),
        (
            media_pb2.ExtractAudioRequest(source=common_pb2.ObjectRef(key="uploads/none.wav")),
            grpc.StatusCode.NOT_FOUND,
            "none.wav",
        ),
    ],
)
def test_validation_codes(plain, tmp_path, req, code, needle):
    stub, _, store = plain
    store.put_file("uploads/s.wav", espeak_wav(tmp_path / "s.wav", "hi"))
    with pytest.raises(grpc.RpcError) as ei:
        stub.ExtractAudio(req)
    assert ei.value.code() == code and needle in ei.value.details()


def test_encode_rejects_gaps_between_packs(plain):
    stub, _, store = plain
    a = store.put_bytes("cache/t/a.lfp", pack_frames(np.zeros((5, 16, 16, 3), np.uint8), fps=25, start=0))
    b = store.put_bytes("cache/t/b.lfp", pack_frames(np.zeros((5, 16, 16, 3), np.uint8), fps=25, start=6))
    with pytest.raises(grpc.RpcError) as ei:
        stub.Encode(
            media_pb2.EncodeRequest(packs=[common_pb2.ObjectRef(key=a.key), common_pb2.ObjectRef(key=b.key)])
        )
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "contiguous" in ei.value.details()


def test_wav_sample_count_reads_header(tmp_path):
    from lihq.media import write_wav

    p = tmp_path / "x.wav"
    write_wav(p, np.zeros(1234, np.float32), 16000)
    assert wav_sample_count(p.read_bytes()[:4096]) == 1234
    with pytest.raises(Exception, match="not a WAV"):
        wav_sample_count(b"nope" * 10)


def test_encode_cuts_to_duration_for_drafts(plain, tmp_path):
    from lihq import media

    stub, _, store = plain
    wav = espeak_wav(tmp_path / "long.wav", "This sentence lasts well over one second when spoken.")
    audio = store.put_file("uploads/long.wav", wav)
    pack = store.put_bytes(
        "cache/t/draft.lfp", pack_frames(np.zeros((25, 16, 16, 3), np.uint8), fps=25, start=0)
    )
    r = stub.Encode(
        media_pb2.EncodeRequest(
            packs=[common_pb2.ObjectRef(key=pack.key)],
            audio=common_pb2.ObjectRef(key=audio.key),
            duration_s=1.0,
        )
    )
    out = tmp_path / "draft.mp4"
    store.get_file(r.video.key, out)
    assert abs(media.probe(out).duration - 1.0) <= 0.05 < media.probe(wav).duration - 1.0
