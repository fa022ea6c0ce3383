"""MotionServicer on a plain grpc.aio server over the filesystem store, with synthetic vox weights.

256² frames (the net's size), 2 driving frames: the gRPC contract, content-addressed outputs and
error codes. The Ray Serve integration suite hosts the same servicer behind Serve's proxy.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lihq.framepack import pack_frames, unpack_frames
from lihq.storage import FileStore
from lihq.v1 import common_pb2, motion_pb2, motion_pb2_grpc
from services.fomm.runner import FommRunner, FommRunnerConfig
from services.fomm.servicer import MotionServicer
from tests.plaingrpc import plain_server

Ref = common_pb2.ObjectRef


@pytest.fixture(scope="module")
def plain(tmp_path_factory, fomm_weights_dir):
    """(stub, channel, store): one plain grpc.aio server for the module."""
    store = FileStore(tmp_path_factory.mktemp("fomm-plain") / "store", "lihq")
    runner = FommRunner(FommRunnerConfig(device="cpu", batch_size=2), weights=fomm_weights_dir)
    names = [motion_pb2.DESCRIPTOR.services_by_name["MotionService"]]
    with plain_server(MotionServicer(store, runner), names) as ch:
        yield motion_pb2_grpc.MotionServiceStub(ch), ch, store


@pytest.fixture(scope="module")
def packs(plain, vectors):
    """(source ref, driving ref): the vector source and driving frames 0..1 at timeline 100."""
    _, _, store = plain
    src = store.put_bytes("uploads/face.lfp", pack_frames(vectors["source_u8"][None], fps=25, start=0))
    drv = store.put_bytes("uploads/drv.lfp", pack_frames(vectors["driving_u8"][:2], fps=25, start=100))
    return Ref(key=src.key), Ref(key=drv.key)


@pytest.fixture(scope="module")
def prepared(plain, packs):
    stub, _, _ = plain
    return stub.PrepareMotion(motion_pb2.PrepareMotionRequest(source=packs[0], driving_first=packs[1]))


def _animate(source, driving, globals_, **kw) -> motion_pb2.AnimateRequest:
    return motion_pb2.AnimateRequest(
        source=source,
        driving=driving,
        globals=globals_,
        mode=motion_pb2.KEYPOINT_MODE_RELATIVE,
        adapt_movement_scale=True,
        **kw,
    )


def test_health(plain):
    _, ch, _ = plain
    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="lihq.v1.MotionService"))
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_prepare_is_content_addressed(plain, packs, prepared):
    stub, _, store = plain
    assert prepared.globals.key.startswith("cache/fomm/") and prepared.globals.key.endswith("/globals.npz")
    assert prepared.initial_frame == 100 and 0.1 < prepared.adapt_movement_scale < 10
    assert prepared.metrics.model_id == "synthetic:1" and not prepared.metrics.cache_hit
    again = stub.PrepareMotion(motion_pb2.PrepareMotionRequest(source=packs[0], driving_first=packs[1]))
    assert again.globals.key == prepared.globals.key and again.metrics.cache_hit
    other = stub.PrepareMotion(
        motion_pb2.PrepareMotionRequest(source=packs[0], driving_first=packs[1], initial_frame=1)
    )
    assert other.globals.key != prepared.globals.key and other.initial_frame == 101


def test_animate_whole_pack_then_one_segment_alone(plain, packs, prepared):
    stub, _, store = plain
    r = stub.Animate(_animate(*packs, prepared.globals))
    whole = unpack_frames(store.get_bytes(r.pack.key))
    assert whole.frames.shape == (2, 256, 256, 3) and whole.start == 100 and whole.fps == 25
    assert r.pack.key.endswith("/seg_000100_000102.lfp") and r.metrics.frames == 2
    assert r.metrics.extra["frames_per_s"] > 0
    hit = stub.Animate(_animate(*packs, prepared.globals))
    assert hit.pack.key == r.pack.key and hit.metrics.cache_hit
    seg = common_pb2.Segment(index=1, start=101, end=102)
    one = stub.Animate(_animate(*packs, prepared.globals, segment=seg))
    alone = unpack_frames(store.get_bytes(one.pack.key))
    assert alone.start == 101 and np.array_equal(alone.frames[0], whole.frames[1])  # bit-exact


@pytest.mark.parametrize(
    "make, code, needle",
    [
        (lambda s, d, g: _animate(s, Ref(key="uploads/none.lfp"), g), grpc.StatusCode.NOT_FOUND, "none.lfp"),
        (lambda s, d, g: _animate(s, d, g, checkpoint="taichi"), grpc.StatusCode.INVALID_ARGUMENT, "taichi"),
        (
            lambda s, d, g: _animate(s, d, g, segment=common_pb2.Segment(start=99, end=101)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not inside the driving pack",
        ),
        (
            lambda s, d, g: _animate(s, d, g, checkpoint="vox-adv"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "lihq weights fetch fomm-adv",
        ),
        (lambda s, d, g: _animate(s, d, d), grpc.StatusCode.INVALID_ARGUMENT, "globals"),
    ],
)
def test_animate_error_codes(plain, packs, prepared, make, code, needle):
    stub, _, _ = plain
    with pytest.raises(grpc.RpcError) as ei:
        stub.Animate(make(*packs, prepared.globals))
    assert ei.value.code() == code and needle in ei.value.details()


def test_wrong_frame_size_is_invalid_argument(plain, packs):
    stub, _, store = plain
    small = store.put_bytes("uploads/small.lfp", pack_frames(np.zeros((2, 128, 128, 3), np.uint8), fps=25))
    with pytest.raises(grpc.RpcError) as ei:
        stub.PrepareMotion(motion_pb2.PrepareMotionRequest(source=packs[0], driving_first=Ref(key=small.key)))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "takes 256x256" in ei.value.details()


def test_source_must_be_one_frame_and_match_the_globals(plain, packs, prepared, vectors):
    stub, _, store = plain
    two = store.put_bytes("uploads/two.lfp", pack_frames(vectors["driving_u8"][:2], fps=25))
    with pytest.raises(grpc.RpcError) as ei:
        stub.PrepareMotion(motion_pb2.PrepareMotionRequest(source=Ref(key=two.key), driving_first=packs[1]))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "exactly 1" in ei.value.details()
    other = store.put_bytes("uploads/other.lfp", pack_frames(vectors["driving_u8"][2:3], fps=25))
    with pytest.raises(grpc.RpcError) as ei:
        stub.Animate(_animate(Ref(key=other.key), packs[1], prepared.globals))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "another source" in ei.value.details()


def test_find_best_frame_without_a_landmark_detector(plain, packs):
    stub, _, _ = plain
    with pytest.raises(grpc.RpcError) as ei:
        stub.PrepareMotion(
            motion_pb2.PrepareMotionRequest(source=packs[0], driving_first=packs[1], find_best_frame=True)
        )
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "initial_frame" in ei.value.details()
