"""InterpolationServicer on a plain grpc.aio server over a FileStore, with seed-1 synthetic weights:
the gRPC contract (index rule, packs, cache), and the error codes. Ray Serve + S3 run in integration."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lihq.errors import WeightsMissing
from lihq.framepack import pack_frames, unpack_frames
from lihq.storage import FileStore
from lihq.v1 import common_pb2, interpolation_pb2, interpolation_pb2_grpc
from services.qvi.runner import model_path
from services.qvi.servicer import InterpolationServicer
from tests.plaingrpc import plain_server
from tests.services.qvi.conftest import moving_clip

SERVICE = interpolation_pb2.DESCRIPTOR.services_by_name["InterpolationService"]


def _missing_weights():
    raise WeightsMissing("QVI weights missing: /nowhere/qvi/model.pt; run `lihq weights fetch qvi`")


@pytest.fixture(scope="module")
def plain(tmp_path_factory, qvi_runner):
    """(stub, stub of a servicer without weights, channel, store) on plain grpc.aio servers."""
    store = FileStore(tmp_path_factory.mktemp("qvi-plain") / "store", "lihq")
    broken = InterpolationServicer(store, loader=_missing_weights)
    with (
        plain_server(InterpolationServicer(store, qvi_runner), [SERVICE]) as ch,
        plain_server(broken, [SERVICE]) as ch_b,
    ):
        stub = interpolation_pb2_grpc.InterpolationServiceStub
        yield stub(ch), stub(ch_b), ch, store


def _put(store, clip, start, name):
    info = store.put_bytes(f"uploads/{name}.lfp", pack_frames(clip, fps=25.0, start=start))
    return common_pb2.ObjectRef(key=info.key)


def _request(refs, s, e, n, k, **kw):
    seg = common_pb2.Segment(index=kw.pop("index", 0), start=s, end=e)
    seg.context_before = kw.pop("cb", 1 if s > 0 else 0)
    seg.context_after = kw.pop("ca", min(2, n - e))
    return interpolation_pb2.InterpolateRequest(frames=refs, segment=seg, k=k, **kw)


def test_health(plain):
    _, _, ch, _ = plain
    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=SERVICE.full_name))
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_segments_over_grpc_concatenate_to_the_whole_clip(plain, qvi_runner):
    stub, _, _, store = plain
    n, k = 5, 2
    clip = moving_clip(n, seed=11)
    whole = qvi_runner.interpolate_clip(clip, k)
    # segment packs as an upstream stage writes them; each call gets its own pack + its neighbours'
    bounds = [(0, 2), (2, 4), (4, 5)]
    packs = [_put(store, clip[s:e], s, f"seg{s}") for s, e in bounds]
    frames, expect = [], 0
    for i, (s, e) in enumerate(bounds):
        refs = packs[max(0, i - 1) : i + 2]
        r = stub.Interpolate(_request(refs, s, e, n, k, index=i))
        assert (r.output.index, r.output.start) == (i, expect)
        assert r.fps == 75.0 and r.metrics.model_id == "synthetic:1" and not r.metrics.cache_hit
        pack = unpack_frames(store.get_bytes(r.pack.key))
        assert (pack.start, pack.end, pack.fps) == (r.output.start, r.output.end, 75.0)
        expect = r.output.end
        frames.append(pack.frames)
    assert expect == (n - 1) * (k + 1) + 1
    assert np.array_equal(np.concatenate(frames), whole)


def test_one_window_pack_and_cache_hit(plain):
    stub, _, _, store = plain
    clip = moving_clip(6, seed=3)
    ref = _put(store, clip[1:6], 1, "window")  # frames 1..5: segment [2, 4) needs 1 before, 2 after
    a = stub.Interpolate(_request([ref], 2, 4, 6, 1, precision=common_pb2.PRECISION_FP32))
    b = stub.Interpolate(_request([ref], 2, 4, 6, 1))  # UNSPECIFIED = the default, fp32
    assert a.pack.key == b.pack.key and b.metrics.cache_hit and b.fps == 50.0
    assert (a.output.start, a.output.end) == (4, 8)
    assert a.metrics.extra["interpolated_frames"] == 2


@pytest.mark.parametrize(
    "case, needle",
    [
        ("k0", "k=0"),
        ("k8", "k=8"),
        ("one_frame", "need >= 2"),
        ("sizes", "share size and fps"),
        ("no_context", "are in no pack"),
        ("no_before", "context_before=0"),
        ("no_packs", "0 frame packs"),
        ("bad_key", "relative"),
    ],
)
def test_bad_input_is_invalid_argument(plain, case, needle):
    stub, _, _, store = plain
    clip = moving_clip(4, seed=5)
    ref = _put(store, clip, 0, "bad")
    reqs = {
        "k0": _request([ref], 0, 4, 4, 0),
        "k8": _request([ref], 0, 4, 4, 8),
        "one_frame": _request([_put(store, clip[:1], 0, "one")], 0, 1, 1, 1),
        "sizes": _request([ref, _put(store, moving_clip(2, h=48), 4, "small")], 0, 4, 6, 1),
        "no_context": _request([ref], 0, 4, 6, 1),  # the clip goes on: frames 4, 5 are needed
        "no_before": _request([ref], 1, 3, 4, 1, cb=0),
        "no_packs": _request([], 0, 4, 4, 1),
        "bad_key": _request([common_pb2.ObjectRef(key="/etc/passwd")], 0, 4, 4, 1),
    }
    with pytest.raises(grpc.RpcError) as ei:
        stub.Interpolate(reqs[case])
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in ei.value.details()


def test_missing_pack_is_not_found(plain):
    stub, _, _, _ = plain
    with pytest.raises(grpc.RpcError) as ei:
        stub.Interpolate(_request([common_pb2.ObjectRef(key="uploads/none.lfp")], 0, 3, 3, 1))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


def test_missing_weights_is_failed_precondition(plain, tmp_path):
    _, broken, _, store = plain
    ref = _put(store, moving_clip(3), 0, "w")
    with pytest.raises(grpc.RpcError) as ei:
        broken.Interpolate(_request([ref], 0, 3, 3, 1))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "lihq weights fetch qvi" in ei.value.details()
    with pytest.raises(WeightsMissing):
        model_path(tmp_path)
