"""Model apps behind Serve's gRPC proxy on the S3 server, with seed-1 synthetic weights."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from lihq.config import StoreConfig
from lihq.framepack import pack_frames, unpack_frames
from lihq.storage import open_store
from lihq.v1 import common_pb2, interpolation_pb2, interpolation_pb2_grpc, lipsync_pb2, lipsync_pb2_grpc
from tests.integration.conftest import internal_md
from tests.mediafiles import espeak_wav

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(serve_stack):
    return open_store(StoreConfig.from_env(serve_stack.env))


def md(app: str):
    return internal_md(app)  # stage calls carry the internal credential


def frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, size, size, 3), dtype=np.uint8)
    return np.repeat(base, n, axis=0) + np.arange(n, dtype=np.uint8)[:, None, None, None]


def test_wav2lip_app(serve_stack, store, tmp_path):
    wav = espeak_wav(tmp_path / "s.wav", "Lips.")
    from lihq import media

    media.write_wav(tmp_path / "s16.wav", media.decode_audio(wav, 16000), 16000)
    w = store.put_file("uploads/it/w2l.wav", tmp_path / "s16.wav")
    pack = store.put_bytes("uploads/it/w2l.lfp", pack_frames(frames(6, 256), fps=25, start=0))
    with serve_stack.channel() as ch:
        stub = lipsync_pb2_grpc.LipSyncServiceStub(ch)
        mel = stub.PrepareAudio(
            lipsync_pb2.PrepareAudioRequest(wav_16k=common_pb2.ObjectRef(key=w.key)),
            metadata=md("wav2lip"),
            timeout=120,
        )
        box = lipsync_pb2.FaceBox(y1=60, y2=220, x1=60, x2=200)  # synthetic S3FD detects nothing: a fixed box
        track = stub.TrackFaces(
            lipsync_pb2.TrackFacesRequest(packs=[common_pb2.ObjectRef(key=pack.key)], box=box),
            metadata=md("wav2lip"),
            timeout=120,
        )
        out = stub.LipSync(
            lipsync_pb2.LipSyncRequest(
                frames=common_pb2.ObjectRef(key=pack.key),
                mel=mel.mel,
                track=track.track,
                segment=common_pb2.Segment(start=0, end=6),
            ),
            metadata=md("wav2lip"),
            timeout=300,
        )
        got = unpack_frames(store.get_bytes(out.pack.key)).frames
        assert got.shape == (6, 256, 256, 3)
        src = frames(6, 256)
        assert not np.array_equal(got[:, 60:220, 60:200], src[:, 60:220, 60:200])  # the mouth box was redrawn
        assert np.array_equal(got[:, :50], src[:, :50])  # outside the box untouched
        # the real detector path (synthetic S3FD) through the proxy: a track of boxes inside the frames,
        # or the clear no-face error; which one depends on the synthetic weights, never INTERNAL
        try:
            r = stub.TrackFaces(
                lipsync_pb2.TrackFacesRequest(packs=[common_pb2.ObjectRef(key=pack.key)]),
                metadata=md("wav2lip"),
                timeout=300,
            )
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "no face" in exc.details()
        else:
            from services.wav2lip.objects import FaceTrack

            boxes = FaceTrack.from_bytes(store.get_bytes(r.track.key)).boxes
            assert r.n_frames == 6 and boxes.shape == (6, 4)
            y1, y2, x1, x2 = boxes.T
            assert (0 <= y1).all() and (y1 < y2).all() and (y2 <= 256).all()
            assert (0 <= x1).all() and (x1 < x2).all() and (x2 <= 256).all()


def test_qvi_app(serve_stack, store):
    pack = store.put_bytes("uploads/it/qvi.lfp", pack_frames(frames(4, 64), fps=25, start=0))
    with serve_stack.channel() as ch:
        stub = interpolation_pb2_grpc.InterpolationServiceStub(ch)
        seg = common_pb2.Segment(start=0, end=4, context_before=0, context_after=0)
        r = stub.Interpolate(
            interpolation_pb2.InterpolateRequest(
                frames=[common_pb2.ObjectRef(key=pack.key)], segment=seg, k=1
            ),
            metadata=md("qvi"),
            timeout=300,
        )
        out = unpack_frames(store.get_bytes(r.pack.key))
        assert out.count == 7 and out.fps == 50 and r.fps == 50  # (N-1)(k+1)+1
        assert np.array_equal(out.frames[0], frames(4, 64)[0])  # originals kept at i(k+1)
        with pytest.raises(grpc.RpcError) as ei:
            stub.Interpolate(
                interpolation_pb2.InterpolateRequest(
                    frames=[common_pb2.ObjectRef(key=pack.key)], segment=seg, k=9
                ),
                metadata=md("qvi"),
                timeout=60,
            )
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_fomm_app(serve_stack, store):
    from lihq.v1 import motion_pb2, motion_pb2_grpc

    src = store.put_bytes("uploads/it/fomm_src.lfp", pack_frames(frames(1, 256, 1), fps=25, start=0))
    drv = store.put_bytes("uploads/it/fomm_drv.lfp", pack_frames(frames(3, 256, 2), fps=25, start=0))
    with serve_stack.channel() as ch:
        stub = motion_pb2_grpc.MotionServiceStub(ch)
        g = stub.PrepareMotion(
            motion_pb2.PrepareMotionRequest(
                source=common_pb2.ObjectRef(key=src.key), driving_first=common_pb2.ObjectRef(key=drv.key)
            ),
            metadata=md("fomm"),
            timeout=300,
        )
        r = stub.Animate(
            motion_pb2.AnimateRequest(
                source=common_pb2.ObjectRef(key=src.key),
                driving=common_pb2.ObjectRef(key=drv.key),
                globals=g.globals,
                mode=motion_pb2.KEYPOINT_MODE_RELATIVE,
                adapt_movement_scale=True,
            ),
            metadata=md("fomm"),
            timeout=600,
        )
        out = unpack_frames(store.get_bytes(r.pack.key))
        assert out.frames.shape == (3, 256, 256, 3)
        bad = store.put_bytes("uploads/it/fomm_bad.lfp", pack_frames(frames(1, 128), fps=25, start=0))
        with pytest.raises(grpc.RpcError) as ei:
            stub.PrepareMotion(
                motion_pb2.PrepareMotionRequest(
                    source=common_pb2.ObjectRef(key=bad.key), driving_first=common_pb2.ObjectRef(key=drv.key)
                ),
                metadata=md("fomm"),
                timeout=60,
            )
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_modnet_app(serve_stack, store):
    from lihq.v1 import matting_pb2, matting_pb2_grpc

    pack = store.put_bytes("uploads/it/modnet.lfp", pack_frames(frames(2, 64, 3), fps=25, start=0))
    with serve_stack.channel() as ch:
        stub = matting_pb2_grpc.MattingServiceStub(ch)
        m = stub.Matte(
            matting_pb2.MatteRequest(frames=common_pb2.ObjectRef(key=pack.key)),
            metadata=md("modnet"),
            timeout=300,
        )
        matte = unpack_frames(store.get_bytes(m.matte.key))
        assert matte.frames.shape == (2, 64, 64, 3)
        c = stub.Composite(
            matting_pb2.CompositeRequest(
                frames=common_pb2.ObjectRef(key=pack.key),
                matte=m.matte,
                background=matting_pb2.Background(color="#00ff00"),
            ),
            metadata=md("modnet"),
            timeout=300,
        )
        out = unpack_frames(store.get_bytes(c.pack.key)).frames.astype(float)
        a = matte.frames[..., :1].astype(float) / 255
        fg = frames(2, 64, 3).astype(float)
        expect = a * fg + (1 - a) * np.array([0.0, 255.0, 0.0])  # speaker over green, by the matte
        assert out.shape == expect.shape and np.abs(out - expect).max() <= 2.0
        with pytest.raises(grpc.RpcError) as ei:
            stub.Composite(
                matting_pb2.CompositeRequest(
                    frames=common_pb2.ObjectRef(key=pack.key),
                    matte=m.matte,
                    background=matting_pb2.Background(color="not-a-colour"),
                ),
                metadata=md("modnet"),
                timeout=60,
            )
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_tts_app(serve_stack, store, tmp_path):
    from lihq import media
    from lihq.v1 import speech_pb2, speech_pb2_grpc

    with serve_stack.channel() as ch:
        stub = speech_pb2_grpc.SpeechServiceStub(ch)
        req = speech_pb2.SynthesizeRequest(
            text="Hello there. This is the second sentence.",
            options=speech_pb2.SpeechOptions(backend="espeak"),
        )
        r = stub.Synthesize(req, metadata=md("tts"), timeout=300)
        store.get_file(r.wav.key, tmp_path / "tts.wav")
        samples = media.decode_audio(tmp_path / "tts.wav", 24000)
        assert (
            r.sample_rate == 24000 and abs(len(samples) / 24000 - r.duration_s) < 0.05 and r.duration_s > 1.0
        )
        assert float(np.sqrt(np.mean(samples**2))) > 0.01  # it speaks
        again = stub.Synthesize(req, metadata=md("tts"), timeout=300)
        assert again.wav.key == r.wav.key  # same request, same key
        with pytest.raises(grpc.RpcError) as ei:
            stub.Synthesize(speech_pb2.SynthesizeRequest(text="  "), metadata=md("tts"), timeout=60)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
