"""RenderService over the Orchestrator core: what users call (protos/lihq/v1/render.proto)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lihq.errors import InvalidInput
from lihq.grpc.errors import apply_error, rpc_method
from lihq.grpc.health import HealthMixin
from lihq.v1 import common_pb2, render_pb2
from orchestrator import uploads
from orchestrator.convert import STATE_NAMES, render_to_proto, spec_from_proto
from orchestrator.core import Orchestrator

MAX_PAGE = 500


class RenderServicer(HealthMixin):
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orch = orchestrator

    @rpc_method(render_pb2.CreateRenderResponse)
    async def CreateRender(self, request: render_pb2.CreateRenderRequest, grpc_context: Any = None):  # noqa: N802
        specs = [spec_from_proto(p) for p in request.renders]
        recs = await self.orch.create(specs, request.idempotency_key, request.webhook_url)
        return render_pb2.CreateRenderResponse(renders=[render_to_proto(r) for r in recs])

    @rpc_method(render_pb2.Render)
    async def GetRender(self, request: render_pb2.GetRenderRequest, grpc_context: Any = None):  # noqa: N802
        return render_to_proto(self.orch.get(_rid(request.render_id)))

    @rpc_method(render_pb2.Render)
    async def CancelRender(self, request: render_pb2.CancelRenderRequest, grpc_context: Any = None):  # noqa: N802
        return render_to_proto(await self.orch.cancel(_rid(request.render_id)))

    @rpc_method(render_pb2.ListRendersResponse)
    async def ListRenders(self, request: render_pb2.ListRendersRequest, grpc_context: Any = None):  # noqa: N802
        state = STATE_NAMES.get(request.state, "") if request.state else ""
        recs = self.orch.list(state)
        size = min(request.page_size or 100, MAX_PAGE)
        start = int(request.page_token or 0) if (request.page_token or "0").isdigit() else 0
        page = recs[start : start + size]
        nxt = str(start + size) if start + size < len(recs) else ""
        return render_pb2.ListRendersResponse(renders=[render_to_proto(r) for r in page], next_page_token=nxt)

    @rpc_method(render_pb2.UploadInputResponse)
    async def UploadInput(self, request_stream: AsyncIterator[Any], grpc_context: Any = None):  # noqa: N802
        """Client stream of chunks -> inputs/<sha256>.<ext> (never overwritten); see orchestrator/uploads.py."""
        up = await uploads.receive(self.orch.renders.store, request_stream)
        ref = common_pb2.ObjectRef(key=up.info.key, sha256=up.sha256, size=up.info.size)
        return render_pb2.UploadInputResponse(object=ref, existed=up.existed)

    async def WatchRender(  # noqa: N802
        self, request: render_pb2.WatchRenderRequest, grpc_context: Any = None
    ) -> AsyncIterator[render_pb2.RenderEvent]:
        """Server stream: the render now, then after every change, until it ends."""
        try:
            async for rec in self.orch.watch(_rid(request.render_id)):
                done = sum(d for d, _ in rec.progress.values())
                total = sum(t for _, t in rec.progress.values())
                yield render_pb2.RenderEvent(
                    render=render_to_proto(rec), message=f"{rec.state} {done}/{total} tasks"
                )
        except Exception as exc:  # the stream ends with the error's status
            apply_error(grpc_context, exc)
            return


def _rid(render_id: str) -> str:
    if not render_id or not render_id.isalnum() or len(render_id) > 64:
        raise InvalidInput(f"render_id {render_id!r}: expected the id CreateRender returned")
    return render_id
