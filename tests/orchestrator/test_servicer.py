"""RenderService over gRPC (plain grpc.aio host): conversions, codes, the WatchRender stream, paging."""

from __future__ import annotations

import grpc
import pytest

from lihq.storage import FileStore
from lihq.v1 import common_pb2, render_pb2, render_pb2_grpc
from lihq_cli.client import _line
from orchestrator.core import Orchestrator
from orchestrator.scheduler import Limits, RetryPolicy
from orchestrator.servicer import RenderServicer
from tests.orchestrator.test_core import FakeStages
from tests.plaingrpc import plain_server


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    store = FileStore(tmp_path_factory.mktemp("rs") / "store", "lihq")
    put_inputs(store)
    orch = Orchestrator(
        store, FakeStages(), Limits(default_concurrency=4), RetryPolicy(attempts=2, base_s=0.001)
    )
    svc = RenderServicer(orch)
    with plain_server(svc, [render_pb2.DESCRIPTOR.services_by_name["RenderService"]]) as ch:
        yield render_pb2_grpc.RenderServiceStub(ch)


def put_inputs(store) -> None:
    """The keys `spec` names exist (CreateRender checks that); the fake stages never read them."""
    for key in ("inputs/f.png", "inputs/a.wav"):
        store.put_bytes(key, b"stand-in")


def spec(**kw) -> render_pb2.RenderSpec:
    return render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key="inputs/f.png"), audio=common_pb2.ObjectRef(key="inputs/a.wav"), **kw
    )


def test_create_watch_get_list(stub):
    r = stub.CreateRender(render_pb2.CreateRenderRequest(renders=[spec(interpolate=1)], idempotency_key="k1"))
    [render] = r.renders
    assert render.spec.passes == 2 and render.spec.wav2lip_checkpoint == "wav2lip_gan"  # defaults applied
    events = list(stub.WatchRender(render_pb2.WatchRenderRequest(render_id=render.render_id), timeout=60))
    assert events[-1].render.state == render_pb2.RENDER_STATE_SUCCEEDED
    assert len(events) >= 2 and any(p.stage == "qvi" for p in events[-1].render.progress)
    got = stub.GetRender(render_pb2.GetRenderRequest(render_id=render.render_id))
    assert got.output.key == "renders/x/output.mp4" and got.spec.interpolate == 1
    again = stub.CreateRender(
        render_pb2.CreateRenderRequest(renders=[spec(interpolate=1)], idempotency_key="k1")
    )
    assert again.renders[0].render_id == render.render_id
    page = stub.ListRenders(render_pb2.ListRendersRequest(page_size=1))
    assert len(page.renders) == 1


def test_bad_requests_are_invalid_argument(stub):
    for req in (
        render_pb2.CreateRenderRequest(renders=[spec(passes=3)]),
        render_pb2.CreateRenderRequest(renders=[render_pb2.RenderSpec(face=common_pb2.ObjectRef(key="f"))]),
        render_pb2.CreateRenderRequest(),
    ):
        with pytest.raises(grpc.RpcError) as ei:
            stub.CreateRender(req)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as ei:
        stub.GetRender(render_pb2.GetRenderRequest(render_id="0123456789abcdef"))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as ei:
        list(stub.WatchRender(render_pb2.WatchRenderRequest(render_id="../x")))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_failed_render_carries_its_stage_and_error_code(tmp_path):
    store = FileStore(tmp_path / "store", "lihq")
    put_inputs(store)
    orch = Orchestrator(
        store,
        FakeStages(fail_on="wav2lip/0"),
        Limits(default_concurrency=4),
        RetryPolicy(attempts=2, base_s=0.001),
    )
    with plain_server(RenderServicer(orch), [render_pb2.DESCRIPTOR.services_by_name["RenderService"]]) as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)
        [render] = stub.CreateRender(render_pb2.CreateRenderRequest(renders=[spec()])).renders
        req = render_pb2.WatchRenderRequest(render_id=render.render_id)
        last = list(stub.WatchRender(req, timeout=60))[-1].render
        got = stub.GetRender(render_pb2.GetRenderRequest(render_id=render.render_id))
    for r in (last, got):
        assert r.state == render_pb2.RENDER_STATE_FAILED and "wav2lip/0" in r.error
        assert (r.error_stage, r.error_code) == ("wav2lip", "INVALID_ARGUMENT")
    assert f"error(wav2lip, INVALID_ARGUMENT)={got.error}" in _line(got)  # `lihq status` / `watch`
