"""FaceRestorationServicer on a plain grpc.aio server over a FileStore, with synthetic weights.

The happy path runs the official-shape nets (GFPGANv1Clean + ParseNet from synthetic seed-1
files, loaded through the real loaders) on one small frame, with the face's detection injected
(synthetic RetinaFace weights detect nothing meaningful; see fakes.py). A second server has an
empty weights dir, for FAILED_PRECONDITION.
"""

from __future__ import annotations

import copy

import grpc
import numpy as np
import pytest

from lihq.framepack import pack_frames, unpack_frames
from lihq.storage import FileStore
from lihq.v1 import common_pb2, restoration_pb2, restoration_pb2_grpc
from services.gfpgan.checkpoint import FaceModels
from services.gfpgan.runner import GfpganConfig, GfpganRunner
from services.gfpgan.servicer import FaceRestorationServicer
from tests.plaingrpc import plain_server
from tests.services.gfpgan.fakes import InjectedDetector, make_frames

SERVICE = restoration_pb2.DESCRIPTOR.services_by_name["FaceRestorationService"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory, official_models, gfpgan_weights_dir):
    """(ok stub, no-weights stub, store, BGR frame) on one background event loop."""
    store = FileStore(tmp_path_factory.mktemp("gfpgan-store"), "lihq")
    frames, dets = make_frames(1, 48, seed=21)
    helper = copy.copy(official_models.helper)
    helper.face_det = InjectedDetector(frames, dets)
    models = FaceModels(
        helper, official_models.device, dict(official_models.restorers), dict(official_models.ids)
    )
    ok = FaceRestorationServicer(store, GfpganRunner(GfpganConfig(gfpgan_weights_dir, batch_size=1), models))
    empty_dir = tmp_path_factory.mktemp("no-weights")
    empty = FaceRestorationServicer(store, GfpganRunner(GfpganConfig(empty_dir)))
    with plain_server(ok, [SERVICE]) as a, plain_server(empty, [SERVICE]) as b:
        stub = restoration_pb2_grpc.FaceRestorationServiceStub
        yield stub(a), stub(b), store, frames


def _put_pack(store, frames_bgr, key="uploads/seg.lfp", start=0):
    rgb = np.ascontiguousarray(frames_bgr[..., ::-1])
    info = store.put_bytes(key, pack_frames(rgb, fps=25.0, start=start))
    return common_pb2.ObjectRef(key=info.key)


def test_restore_happy_path_is_content_addressed_and_cached(plain):
    stub, _, store, frames = plain
    ref = _put_pack(store, frames)
    req = restoration_pb2.RestoreRequest(
        frames=ref,
        segment=common_pb2.Segment(index=0, start=0, end=1),
        version="1.4",
        upscale=2,
        noise_seed=5,
    )
    a = stub.Restore(req, timeout=600)
    assert (a.width, a.height, list(a.faces_per_frame)) == (96, 96, [1])
    assert a.pack.key.startswith("cache/gfpgan/") and a.pack.key.endswith("seg_000000_000001.lfp")
    assert "gfpgan-1.4=synthetic:1" in a.metrics.model_id and "facexlib=synthetic:1" in a.metrics.model_id
    assert not a.metrics.cache_hit and a.metrics.extra["faces"] == 1
    out = unpack_frames(store.get_bytes(a.pack.key))
    assert out.frames.shape == (1, 96, 96, 3) and out.start == 0 and out.fps == 25.0
    b = stub.Restore(req, timeout=600)
    assert b.metrics.cache_hit and b.pack.key == a.pack.key and (b.width, b.height) == (96, 96)


def test_missing_frames_is_not_found(plain):
    stub, _, _, _ = plain
    with pytest.raises(grpc.RpcError) as ei:
        stub.Restore(restoration_pb2.RestoreRequest(frames=common_pb2.ObjectRef(key="uploads/none.lfp")))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND and "none.lfp" in ei.value.details()


def test_missing_weights_is_failed_precondition(plain):
    _, no_weights, store, frames = plain
    ref = _put_pack(store, frames, key="uploads/seg2.lfp")
    with pytest.raises(grpc.RpcError) as ei:
        no_weights.Restore(restoration_pb2.RestoreRequest(frames=ref))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "lihq weights fetch facexlib" in ei.value.details()


@pytest.mark.parametrize(
    "fields, needle",
    [
        (dict(version="9"), "version"),
        (dict(upscale=99), "upscale"),
        (dict(output_size=5), "output_size"),
        (dict(precision=7), "precision"),
        (dict(segment=common_pb2.Segment(start=5, end=6)), "needs [5, 6)"),
        (dict(smooth_radius=-1), "smooth_radius"),
    ],
)
def test_bad_params_are_invalid_argument(plain, fields, needle):
    stub, _, store, frames = plain
    ref = _put_pack(store, frames, key="uploads/seg3.lfp")
    with pytest.raises(grpc.RpcError) as ei:
        stub.Restore(restoration_pb2.RestoreRequest(frames=ref, **fields))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in ei.value.details()


def test_not_a_frame_pack_is_invalid_argument(plain):
    stub, _, store, _ = plain
    info = store.put_bytes("uploads/junk.lfp", b"not a pack at all" * 8)
    with pytest.raises(grpc.RpcError) as ei:
        stub.Restore(restoration_pb2.RestoreRequest(frames=common_pb2.ObjectRef(key=info.key)))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "frame pack" in ei.value.details()


def test_app_args_are_typed_and_checked(tmp_path):
    from services.gfpgan.deployment import GfpganAppArgs

    args = GfpganAppArgs.parse({"weights_dir": str(tmp_path), "batch_size": 4, "precision": "bf16"})
    cfg = args.runner
    assert (cfg.weights_dir, cfg.batch_size, cfg.precision) == (tmp_path, 4, "bf16")
    with pytest.raises(ValueError, match="unknown args"):
        GfpganAppArgs.parse({"batchsize": 4})
    with pytest.raises(ValueError, match="batch_size"):
        GfpganAppArgs.parse({"batch_size": 0})
    with pytest.raises(ValueError, match="precision"):
        GfpganAppArgs.parse({"precision": "int8"})
