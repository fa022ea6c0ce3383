"""LipSyncServicer on plain grpc.aio servers over a FileStore, with synthetic weights (seed 1).

Two servers share the store: `real` runs the synthetic S3FD, whose random weights find no meaningful
face, so the face-track logic (pads, smoothing, no-face errors, carry_last_box) is driven through
`injected`, whose runner has a scripted detector: a frame's pixel (0, 0) says where its face is, or
(red = 255) that it has none. LipSync uses fixed-box and scripted tracks on a few 256² frames.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lihq.framepack import pack_frames, unpack_frames
from lihq.grpc.server import serve_plain
from lihq.media import write_wav
from lihq.storage import FileStore
from lihq.v1 import common_pb2, lipsync_pb2, lipsync_pb2_grpc
from services.wav2lip.faces import Pads
from services.wav2lip.objects import FaceTrack
from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig
from services.wav2lip.servicer import LipSyncServicer
from services.wav2lip.track import build_track

SIZE = 256
NO_FACE = 255


def scripted_detector(frames: np.ndarray) -> list:
    out = []
    for f in frames:
        if f[0, 0, 0] == NO_FACE:
            out.append(None)
        else:
            m = int(f[0, 0, 1]) % 20
            out.append((40 + m, 50, 200 + m, 190))
    return out


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path):
    """{'real': stub, 'injected': stub, 'channel': ch, 'store': store}, one loop for both servers."""
    store = FileStore(tmp_path_factory.mktemp("lipsync") / "store", "lihq")
    cfg = Wav2LipRunnerConfig(device="cpu", batch_size=4, detect_batch_size=2, weights_dir=weights_dir)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}
    names = [lipsync_pb2.DESCRIPTOR.services_by_name["LipSyncService"]]

    async def main() -> None:
        holder["done"] = asyncio.Event()
        holder["real"] = await serve_plain(LipSyncServicer(store, Wav2LipRunner(cfg)), names)
        inj = Wav2LipRunner(cfg, detector=scripted_detector)
        holder["injected"] = await serve_plain(LipSyncServicer(store, inj), names)
        started.set()
        await holder["done"].wait()
        await asyncio.sleep(0.2)  # let the shutdown call's result reach the test thread

    async def stop_all() -> None:
        for k in ("injected", "real"):
            await holder[k][0].stop(None)
        holder["done"].set()

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    assert started.wait(60)
    chans = {k: grpc.insecure_channel(f"127.0.0.1:{holder[k][1]}") for k in ("real", "injected")}
    yield {
        **{k: lipsync_pb2_grpc.LipSyncServiceStub(c) for k, c in chans.items()},
        "channel": chans["real"],
        "store": store,
    }
    for c in chans.values():
        c.close()
    asyncio.run_coroutine_threadsafe(stop_all(), loop).result(10)
    t.join(10)


def _frames(n: int, seed: int = 0, no_face: tuple[int, ...] = ()) -> np.ndarray:
    frames = np.random.default_rng(seed).integers(0, 250, (n, SIZE, SIZE, 3), dtype=np.uint8)
    frames[:, 0, 0, 1] = np.arange(n) * 3
    frames[list(no_face), 0, 0, 0] = NO_FACE
    return frames


def _put_packs(store: FileStore, frames: np.ndarray, bounds, tag: str) -> list[common_pb2.ObjectRef]:
    out = []
    for s, e in bounds:
        info = store.put_bytes(f"t/{tag}_{s}_{e}.lfp", pack_frames(frames[s:e], fps=25.0, start=s))
        out.append(common_pb2.ObjectRef(key=info.key))
    return out


@pytest.fixture(scope="module")
def mel_ref(plain, tmp_path_factory: pytest.TempPathFactory) -> common_pb2.ObjectRef:
    t = np.arange(16000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    path = write_wav(tmp_path_factory.mktemp("wav") / "speech_16k.wav", wav, 16000)
    info = plain["store"].put_file("uploads/speech_16k.wav", path)
    r = plain["real"].PrepareAudio(
        lipsync_pb2.PrepareAudioRequest(wav_16k=common_pb2.ObjectRef(key=info.key))
    )
    assert (r.n_chunks, r.mel_frames, r.duration_s) == (22, 81, 1.0) and not r.metrics.cache_hit
    return r.mel


def _code(call, *args) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as ei:
        call(*args)
    return ei.value.code(), ei.value.details()


def test_health(plain) -> None:
    r = health_pb2_grpc.HealthStub(plain["channel"]).Check(
        health_pb2.HealthCheckRequest(service="lihq.v1.LipSyncService")
    )
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_prepare_audio_cache_and_errors(plain, mel_ref, tmp_path: Path) -> None:
    stub, store = plain["real"], plain["store"]
    again = stub.PrepareAudio(
        lipsync_pb2.PrepareAudioRequest(wav_16k=common_pb2.ObjectRef(key="uploads/speech_16k.wav"))
    )
    assert again.metrics.cache_hit and again.mel.key == mel_ref.key
    info = store.put_file("uploads/8k.wav", write_wav(tmp_path / "8k.wav", np.zeros(8000, np.float32), 8000))
    code, details = _code(
        stub.PrepareAudio, lipsync_pb2.PrepareAudioRequest(wav_16k=common_pb2.ObjectRef(key=info.key))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "16000 Hz" in details
    code, _ = _code(
        stub.PrepareAudio, lipsync_pb2.PrepareAudioRequest(wav_16k=common_pb2.ObjectRef(key="uploads/x.wav"))
    )
    assert code == grpc.StatusCode.NOT_FOUND


def test_track_pads_and_smoothing(plain) -> None:
    frames = _frames(7, seed=1)
    packs = _put_packs(plain["store"], frames, [(0, 4), (4, 7)], "track")
    r = plain["injected"].TrackFaces(lipsync_pb2.TrackFacesRequest(packs=packs))
    want = build_track(scripted_detector(frames), SIZE, SIZE, Pads())
    got = FaceTrack.from_bytes(plain["store"].get_bytes(r.track.key))
    assert np.array_equal(got.boxes, want.boxes) and r.n_frames == 7 and got.pads == (0, 20, 0, 0)
    other = plain["injected"].TrackFaces(
        lipsync_pb2.TrackFacesRequest(packs=packs, pads=lipsync_pb2.Pads(bottom=10), no_smooth=True)
    )
    assert other.track.key != r.track.key
    raw = FaceTrack.from_bytes(plain["store"].get_bytes(other.track.key))
    assert raw.boxes[6].tolist() == [50, 200, 58, 218]  # m = 18: y1, y2 + 10, x1, x2 (no smoothing)


def test_no_face_names_the_frames_or_carries(plain) -> None:
    packs = _put_packs(plain["store"], _frames(6, seed=2, no_face=(1, 2)), [(0, 3), (3, 6)], "noface")
    code, details = _code(plain["injected"].TrackFaces, lipsync_pb2.TrackFacesRequest(packs=packs))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no face found in frames 1-2 of [0, 6)" in details
    r = plain["injected"].TrackFaces(lipsync_pb2.TrackFacesRequest(packs=packs, carry_last_box=True))
    assert r.carried_frames == 2


def test_track_rejects_gaps(plain) -> None:
    packs = _put_packs(plain["store"], _frames(6, seed=3), [(0, 2), (3, 6)], "gap")
    code, details = _code(plain["injected"].TrackFaces, lipsync_pb2.TrackFacesRequest(packs=packs))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "contiguous" in details


def test_real_s3fd_track_on_256_frames(plain) -> None:
    """The real detector path (S3FD with synthetic seed-1 weights) on 256² frames: either a track of
    boxes inside the frame, or the no-face error naming the frames. Which one depends on the weights;
    both are the servicer's contract."""
    packs = _put_packs(plain["store"], _frames(2, seed=4), [(0, 2)], "s3fd")
    try:
        r = plain["real"].TrackFaces(lipsync_pb2.TrackFacesRequest(packs=packs))
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no face found in frames 0-1 of [0, 2)" in exc.details()
        return
    track = FaceTrack.from_bytes(plain["store"].get_bytes(r.track.key))
    assert r.n_frames == 2 and track.boxes.shape == (2, 4)
    y1, y2, x1, x2 = track.boxes.T
    assert (0 <= y1).all() and (y1 < y2).all() and (y2 <= SIZE).all()
    assert (0 <= x1).all() and (x1 < x2).all() and (x2 <= SIZE).all()


def test_lipsync_segments_equal_the_whole_clip(plain, mel_ref) -> None:
    stub, store = plain["real"], plain["store"]
    frames = _frames(4, seed=5)
    segs = _put_packs(store, frames, [(0, 2), (2, 4)], "seg")
    whole = _put_packs(store, frames, [(0, 4)], "whole")[0]
    box = lipsync_pb2.FaceBox(y1=40, y2=220, x1=50, x2=210)
    track = stub.TrackFaces(lipsync_pb2.TrackFacesRequest(packs=segs, box=box)).track

    def run(
        pack: common_pb2.ObjectRef, segment: common_pb2.Segment | None = None
    ) -> lipsync_pb2.LipSyncResponse:
        return stub.LipSync(
            lipsync_pb2.LipSyncRequest(frames=pack, mel=mel_ref, track=track, segment=segment)
        )

    full = run(whole)
    assert full.metrics.model_id == "synthetic:1" and full.metrics.frames == 4
    out_whole = unpack_frames(store.get_bytes(full.pack.key))
    parts = [unpack_frames(store.get_bytes(run(p).pack.key)) for p in segs]
    assert [p.start for p in parts] == [0, 2]
    assert np.array_equal(np.concatenate([p.frames for p in parts]), out_whole.frames)
    assert not np.array_equal(out_whole.frames, frames)
    inner = run(whole, common_pb2.Segment(index=1, start=2, end=4))
    assert np.array_equal(unpack_frames(store.get_bytes(inner.pack.key)).frames, parts[1].frames)
    assert run(whole).metrics.cache_hit


def test_lipsync_error_codes(plain, mel_ref) -> None:
    stub, store = plain["real"], plain["store"]
    frames = _frames(2, seed=6)
    pack = _put_packs(store, frames, [(0, 2)], "err")[0]
    box = lipsync_pb2.FaceBox(y1=40, y2=220, x1=50, x2=210)
    track = stub.TrackFaces(lipsync_pb2.TrackFacesRequest(packs=[pack], box=box)).track
    small = store.put_bytes("t/small.lfp", pack_frames(np.zeros((2, 128, 128, 3), np.uint8), fps=25.0))
    cases = [
        (
            dict(frames=pack, mel=common_pb2.ObjectRef(key="cache/none/mel.npz"), track=track),
            "NOT_FOUND",
            "mel",
        ),
        (
            dict(frames=pack, mel=mel_ref, track=track, checkpoint="wav2lip"),
            "FAILED_PRECONDITION",
            "lihq weights fetch wav2lip`",
        ),
        (
            dict(frames=common_pb2.ObjectRef(key=small.key), mel=mel_ref, track=track),
            "INVALID_ARGUMENT",
            "128x128",
        ),
        (
            dict(frames=pack, mel=mel_ref, track=track, segment=common_pb2.Segment(start=1, end=5)),
            "INVALID_ARGUMENT",
            "not inside",
        ),
        (
            dict(frames=pack, mel=mel_ref, track=track, checkpoint="sd15"),
            "INVALID_ARGUMENT",
            "checkpoint 'sd15'",
        ),
        (dict(frames=pack, mel=track, track=track), "INVALID_ARGUMENT", "not a lihq.wav2lip.mel"),
    ]
    for kwargs, code, needle in cases:
        got, details = _code(stub.LipSync, lipsync_pb2.LipSyncRequest(**kwargs))
        assert (got.name, needle in details) == (code, True), (kwargs, details)
