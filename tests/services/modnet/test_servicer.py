"""MattingServicer on a plain grpc.aio server over a FileStore, with synthetic weights (seed 3).

Two servicers share one event loop: one with weights, one whose registry dir is empty (to check
FAILED_PRECONDITION). The runner uses ref_size 64 so the network runs on small inputs; the upstream
pipeline at ref size 512 is checked by the verify tests.
"""

from __future__ import annotations

import subprocess

import grpc
import numpy as np
import pytest
from PIL import Image

from lihq.framepack import pack_frames, unpack_frames
from lihq.storage import FileStore
from lihq.v1 import common_pb2, matting_pb2, matting_pb2_grpc
from lihq.weights import require
from services.modnet.runner import ModnetConfig, ModnetRunner
from services.modnet.servicer import MattingServicer
from tests.plaingrpc import plain_server

FPS = 10.0


@pytest.fixture(scope="module")
def plain(tmp_path_factory, modnet_ckpt):
    """(stub with weights, stub without weights, store, runner)."""
    store = FileStore(tmp_path_factory.mktemp("store") / "store", "lihq")
    empty_weights = tmp_path_factory.mktemp("no-weights")
    runner = ModnetRunner.from_checkpoint(modnet_ckpt, ModnetConfig(device="cpu", batch_size=2, ref_size=64))

    def missing() -> ModnetRunner:
        return ModnetRunner.from_checkpoint(require("modnet", empty_weights))

    names = [matting_pb2.DESCRIPTOR.services_by_name["MattingService"]]
    with (
        plain_server(MattingServicer(store, runner), names) as ok,
        plain_server(MattingServicer(store, missing), names) as none,
    ):
        yield (
            matting_pb2_grpc.MattingServiceStub(ok),
            matting_pb2_grpc.MattingServiceStub(none),
            store,
            runner,
        )


def _speaker_pack(store, key="uploads/speaker.lfp", n=4, h=24, w=32, start=50, seed=0):
    frames = np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    info = store.put_bytes(key, pack_frames(frames, fps=FPS, start=start))
    return frames, common_pb2.ObjectRef(key=info.key)


def _matte_pack(store, n=4, h=24, w=32, start=50, key="uploads/matte.lfp"):
    """Left half speaker (255), right half background (0), replicated to RGB as Matte writes it."""
    m = np.zeros((n, h, w, 3), np.uint8)
    m[:, :, : w // 2] = 255
    return common_pb2.ObjectRef(key=store.put_bytes(key, pack_frames(m, fps=FPS, start=start)).key)


def test_matte_happy_path_and_cache(plain):
    stub, _, store, runner = plain
    frames, ref = _speaker_pack(store)
    a = stub.Matte(
        matting_pb2.MatteRequest(frames=ref, segment=common_pb2.Segment(index=1, start=50, end=54))
    )
    b = stub.Matte(matting_pb2.MatteRequest(frames=ref))
    assert a.matte.key == b.matte.key and a.matte.key.startswith("cache/modnet/")
    assert not a.metrics.cache_hit and b.metrics.cache_hit and a.metrics.frames == 4
    assert a.metrics.model_id == "synthetic:3" and a.metrics.device == "cpu"
    pack = unpack_frames(store.get_bytes(a.matte.key))
    assert (pack.start, pack.fps, pack.frames.shape) == (50, FPS, (4, 24, 32, 3))
    assert (pack.frames == pack.frames[..., :1]).all()  # grey, replicated to RGB
    np.testing.assert_array_equal(pack.frames[..., 0], runner.matte_uint8(frames))
    c = stub.Matte(matting_pb2.MatteRequest(frames=ref, precision=common_pb2.PRECISION_BF16))
    assert c.matte.key != a.matte.key  # precision is part of the output key


def test_composite_colour_with_alpha_and_placement(plain):
    stub, _, store, _ = plain
    frames, fref = _speaker_pack(store, key="uploads/s2.lfp")
    req = matting_pb2.CompositeRequest(
        frames=fref,
        matte=_matte_pack(store),
        background=matting_pb2.Background(color="#00ff00"),
        placement=matting_pb2.Placement(offset_x=10, offset_y=5),
        width=64,
        height=40,
        alpha_output=True,
    )
    r = stub.Composite(req)
    out = unpack_frames(store.get_bytes(r.pack.key))
    alpha = unpack_frames(store.get_bytes(r.alpha.key))
    assert out.frames.shape == (4, 40, 64, 3) and (out.start, out.fps) == (50, FPS)
    np.testing.assert_array_equal(out.frames[:, 5:29, 10:26], frames[:, :, :16])  # speaker half
    assert (out.frames[:, 5:29, 26:42] == (0, 255, 0)).all()  # its matte is 0 there
    assert (out.frames[:, :5] == (0, 255, 0)).all()
    want = np.zeros((40, 64), np.uint8)
    want[5:29, 10:26] = 255
    assert (alpha.frames[..., 0] == want).all()
    assert stub.Composite(req).metrics.cache_hit


def test_composite_image_and_video_backgrounds(plain, tmp_path):
    stub, _, store, _ = plain
    _, fref = _speaker_pack(store, key="uploads/s3.lfp")
    img = tmp_path / "bg.png"
    Image.fromarray(np.full((30, 50, 3), (10, 20, 200), np.uint8)).save(img)
    image = common_pb2.ObjectRef(key=store.put_file("uploads/bg.png", img).key)
    r = stub.Composite(
        matting_pb2.CompositeRequest(
            frames=fref, matte=_matte_pack(store), background=matting_pb2.Background(image=image)
        )
    )
    out = unpack_frames(store.get_bytes(r.pack.key)).frames
    assert out.shape == (4, 30, 50, 3)  # the image's own size
    assert (out[:, :, 40:] == (10, 20, 200)).all()
    vid = tmp_path / "bg.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=48x32:rate=25:duration=1", str(vid)],
        check=True,
    )
    video = common_pb2.ObjectRef(key=store.put_file("uploads/bg.mp4", vid).key)
    bg = matting_pb2.Background(video=video, video_offset_s=0.2, fit=matting_pb2.BACKGROUND_FIT_COVER)
    r = stub.Composite(matting_pb2.CompositeRequest(frames=fref, matte=_matte_pack(store), background=bg))
    out = unpack_frames(store.get_bytes(r.pack.key)).frames
    assert out.shape == (4, 32, 48, 3) and out[:, :, 40:].std() > 0


@pytest.mark.parametrize(
    "background, needle",
    [
        (matting_pb2.Background(color="not-a-colour"), "CSS colour"),
        (matting_pb2.Background(image=common_pb2.ObjectRef(key="uploads/garbage.png")), "background image"),
        (matting_pb2.Background(video=common_pb2.ObjectRef(key="uploads/garbage.png")), "background video"),
    ],
)
def test_bad_background_is_invalid_argument(plain, background, needle):
    stub, _, store, _ = plain
    store.put_bytes("uploads/garbage.png", b"definitely not an image" * 20)
    _, fref = _speaker_pack(store, key="uploads/s4.lfp")
    with pytest.raises(grpc.RpcError) as ei:
        stub.Composite(
            matting_pb2.CompositeRequest(frames=fref, matte=_matte_pack(store), background=background)
        )
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in ei.value.details()


def test_mismatched_matte_is_invalid_argument(plain):
    stub, _, store, _ = plain
    _, fref = _speaker_pack(store, key="uploads/s5.lfp")
    with pytest.raises(grpc.RpcError) as ei:
        stub.Composite(
            matting_pb2.CompositeRequest(frames=fref, matte=_matte_pack(store, n=3, key="uploads/m3.lfp"))
        )
    assert (
        ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "pass the matte made from these frames" in ei.value.details()
    )


def test_missing_key_is_not_found(plain):
    stub, _, _, _ = plain
    with pytest.raises(grpc.RpcError) as ei:
        stub.Matte(matting_pb2.MatteRequest(frames=common_pb2.ObjectRef(key="uploads/nothing.lfp")))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND and "nothing.lfp" in ei.value.details()


def test_missing_weights_is_failed_precondition(plain):
    _, no_weights, store, _ = plain
    _, ref = _speaker_pack(store, key="uploads/s6.lfp")
    with pytest.raises(grpc.RpcError) as ei:
        no_weights.Matte(matting_pb2.MatteRequest(frames=ref))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "lihq weights fetch modnet" in ei.value.details()


def test_export_alpha_writes_one_video_with_alpha(plain):
    stub, _, store, _ = plain
    _, f0 = _speaker_pack(store, key="uploads/e0.lfp", start=0)
    _, f1 = _speaker_pack(store, key="uploads/e1.lfp", start=4, seed=1)
    m0 = _matte_pack(store, start=0, key="uploads/em0.lfp")
    m1 = _matte_pack(store, start=4, key="uploads/em1.lfp")
    r = stub.ExportAlpha(
        matting_pb2.ExportAlphaRequest(
            frames=[f0, f1],
            mattes=[m0, m1],
            format=matting_pb2.ALPHA_FORMAT_PRORES_4444,
            output_key="renders/x/speaker.mov",  # only under the calling render's own prefix
            ctx=common_pb2.CallContext(render_id="x"),
        )
    )
    assert (
        r.video.key == "renders/x/speaker.mov"
        and r.pix_fmt.startswith("yuva")
        and r.frames == 8
        and r.fps == FPS
    )
    webm = stub.ExportAlpha(matting_pb2.ExportAlphaRequest(frames=[f0, f1], mattes=[m0, m1]))
    assert webm.video.key.endswith("speaker_alpha.webm") and webm.pix_fmt == "yuva420p"
    with pytest.raises(grpc.RpcError) as ei:
        stub.ExportAlpha(matting_pb2.ExportAlphaRequest(frames=[f1, f0], mattes=[m1, m0]))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "contiguous" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        stub.ExportAlpha(matting_pb2.ExportAlphaRequest(frames=[f0, f1], mattes=[m0]))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
