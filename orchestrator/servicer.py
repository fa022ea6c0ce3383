"""RenderService over the Orchestrator core: what users call (protos/lihq/v1/render.proto)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from lihq.auth import Authenticator, Principal, Quotas
from lihq.errors import InvalidInput, LihqError, NotFound
from lihq.grpc.auth import metadata_of
from lihq.grpc.errors import apply_error, rpc_method
from lihq.grpc.health import HealthMixin
from lihq.v1 import common_pb2, render_pb2
from orchestrator import tenancy, uploads
from orchestrator.core import Orchestrator, create_io
from orchestrator.spec import check, with_defaults
from orchestrator.spec_proto import STATE_NAMES, render_to_proto, spec_from_proto
from orchestrator.state import RenderRecord

MAX_PAGE = 500
_TOKEN_ID = re.compile(r"[0-9a-zA-Z]{1,64}")
MAX_IDEMPOTENCY_KEY = 200
MAX_PAGES_PER_CALL = 20  # store pages one ListRenders reads at most (a short page still has a next token)
TRUSTED = Principal("", ("read", "write", "admin"))  # in-process calls (no gRPC context)


class WatchAborted(Exception):
    """Raised out of WatchRender after the status is set: Serve's proxy sends the code the context holds
    only when the stream ends with an exception (a stream that yielded nothing would end OK)."""


class RenderServicer(HealthMixin):
    internal_only = False  # clients call RenderService with API tokens, not the internal credential

    def __init__(
        self, orchestrator: Orchestrator, auth: Authenticator | None = None, quotas: Quotas | None = None
    ) -> None:
        self.orch = orchestrator
        self.auth = auth or Authenticator()
        self._quotas = quotas

    @property
    def quotas(self) -> Quotas:
        return self._quotas or Quotas.from_env()  # the environment at each call (cheap)

    # -- who is calling ---------------------------------------------------------------------------
    def _principal(self, grpc_context: Any, right: str, what: str) -> Principal:
        if grpc_context is None:
            return TRUSTED
        principal = self.auth.authenticate(metadata_of(grpc_context))
        principal.require(right, what)
        return principal

    async def _owned(self, principal: Principal, render_id: str) -> RenderRecord:
        """The caller's render, or NOT_FOUND (another tenant's id looks exactly like an unknown one)."""
        rid = tenancy.check_render_id(render_id)
        rec = await self.orch.fetch(rid)
        if not tenancy.visible(principal, rec.tenant):
            raise NotFound(f"no render {rid!r}")
        return rec

    def _owner_of(self, render_id: str) -> str:
        try:
            return self.orch.get(render_id).tenant
        except LihqError:
            return ""

    # -- RPCs ------------------------------------------------------------------------------------
    @rpc_method(render_pb2.CreateRenderResponse)
    async def CreateRender(self, request: render_pb2.CreateRenderRequest, grpc_context: Any = None):  # noqa: N802
        who = self._principal(grpc_context, "write", "create renders")
        if len(request.idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidInput(f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters")
        if grpc_context is not None:  # quotas and key ownership are for clients, not in-process callers
            self.quotas.check_request(len(request.renders))
            for i, p in enumerate(request.renders):  # the cheap, pure checks first: they name every problem
                where = f"render {i + 1} of {len(request.renders)}: " if len(request.renders) > 1 else ""
                try:
                    check(with_defaults(spec_from_proto(p)))
                except InvalidInput as exc:
                    raise InvalidInput(where + exc.message) from None
            checker = tenancy.RefChecker(self.orch.renders.store, who, self._owner_of, tenancy.probe_media)
        else:
            checker = None
        # every store check of the request in one worker thread, on the creation threads (orchestrator/core.py)
        store = self.orch.renders.store
        specs = await create_io(store, _store_checks, checker, store, request.renders)
        if grpc_context is not None and request.renders:
            # this replica's queued + running renders of the tenant: counted in memory, no store scan
            self.quotas.check_running(self.orch.unfinished_count(who.tenant), len(specs))
        # idempotency keys are per tenant: another tenant's key never finds these renders
        key = f"{who.tenant}/{request.idempotency_key}" if request.idempotency_key else ""
        recs = await self.orch.create(specs, key, request.webhook_url, tenant=who.tenant)
        return render_pb2.CreateRenderResponse(renders=[render_to_proto(r) for r in recs])

    @rpc_method(render_pb2.Render)
    async def GetRender(self, request: render_pb2.GetRenderRequest, grpc_context: Any = None):  # noqa: N802
        who = self._principal(grpc_context, "read", "read renders")
        return render_to_proto(await self._owned(who, request.render_id))

    @rpc_method(render_pb2.Render)
    async def CancelRender(self, request: render_pb2.CancelRenderRequest, grpc_context: Any = None):  # noqa: N802
        who = self._principal(grpc_context, "write", "cancel renders")
        rec = await self._owned(who, request.render_id)
        return render_to_proto(await self.orch.cancel(rec.render_id))

    @rpc_method(render_pb2.ListRendersResponse)
    async def ListRenders(self, request: render_pb2.ListRendersRequest, grpc_context: Any = None):  # noqa: N802
        who = self._principal(grpc_context, "read", "list renders")
        if request.state and request.state not in STATE_NAMES:
            raise InvalidInput(f"state {request.state}: not a RenderState")
        if request.page_size < 0:
            raise InvalidInput(f"page_size={request.page_size}: must be >= 0 (0: the default, 100)")
        state = STATE_NAMES.get(request.state, "") if request.state else ""
        after = decode_page_token(request.page_token, state)
        size = min(request.page_size or 100, MAX_PAGE)
        page: list[RenderRecord] = []
        last = after
        for _ in range(MAX_PAGES_PER_CALL):  # other tenants' renders are skipped: read on to fill the page
            recs, last = await self.orch.page(state, last, size)
            page += [r for r in recs if tenancy.visible(who, r.tenant)]
            if len(page) >= size or not last:
                break
        if len(page) > size:  # the next page starts after the last one returned
            page, last = page[:size], page[size - 1].render_id
        return render_pb2.ListRendersResponse(
            renders=[render_to_proto(r) for r in page], next_page_token=encode_page_token(last, state)
        )

    @rpc_method(render_pb2.UploadInputResponse)
    async def UploadInput(self, request_stream: AsyncIterator[Any], grpc_context: Any = None):  # noqa: N802
        """Client stream of chunks -> inputs/<sha256>.<ext> (never overwritten); see orchestrator/uploads.py."""
        who = self._principal(grpc_context, "write", "upload inputs")
        tenanted = grpc_context is not None and self.auth.enabled  # without auth: the shared inputs/
        prefix = tenancy.uploads_prefix(who.tenant) if tenanted else uploads.PREFIX
        limit = self.quotas.upload_bytes if grpc_context is not None else None
        up = await uploads.receive(self.orch.renders.store, request_stream, limit, prefix)
        ref = common_pb2.ObjectRef(key=up.info.key, sha256=up.sha256, size=up.info.size)
        return render_pb2.UploadInputResponse(object=ref, existed=up.existed)

    async def WatchRender(  # noqa: N802
        self, request: render_pb2.WatchRenderRequest, grpc_context: Any = None
    ) -> AsyncIterator[render_pb2.RenderEvent]:
        """Server stream: the render now, then after every change, until it ends."""
        try:
            who = self._principal(grpc_context, "read", "watch renders")
            rid = (await self._owned(who, request.render_id)).render_id
            async for rec in self.orch.watch(rid):
                done = sum(d for d, _ in rec.progress.values())
                total = sum(t for _, t in rec.progress.values())
                yield render_pb2.RenderEvent(
                    render=render_to_proto(rec), message=f"{rec.state} {done}/{total} tasks"
                )
        except Exception as exc:  # the stream ends with the error's status
            if grpc_context is None:
                raise
            apply_error(grpc_context, exc)
            raise WatchAborted(str(exc)[:200]) from None

    async def ReadRenderFile(  # noqa: N802
        self, request: render_pb2.ReadRenderFileRequest, grpc_context: Any = None
    ) -> AsyncIterator[render_pb2.ReadRenderFileChunk]:
        """Server stream: one of the caller's own render's files (output.mp4, hls/<name>) in chunks of
        at most 1 MiB from `offset`; the first chunk carries the total size (lihq/client.py, `lihq ui`)."""
        try:
            who = self._principal(grpc_context, "read", "read render files")
            name = check_render_file_name(request.name)
            rid = (await self._owned(who, request.render_id)).render_id
            if request.offset < 0:
                raise InvalidInput(f"offset={request.offset}: must be >= 0")
            store, key = self.orch.renders.store, f"renders/{rid}/{name}"
            try:
                size = (await asyncio.to_thread(store.stat, key)).size
            except NotFound:
                raise NotFound(f"render {rid!r} has no file {name!r} (yet)") from None
            if request.offset > size:
                raise InvalidInput(f"offset={request.offset} is past the end of {name!r} ({size} bytes)")
            first = True
            async for data in _read_range(store, key, request.offset):
                yield render_pb2.ReadRenderFileChunk(data=data, total_size=size if first else 0)
                first = False
            if first:  # an empty file, or offset == size: the size alone
                yield render_pb2.ReadRenderFileChunk(total_size=size)
        except Exception as exc:  # the stream ends with the error's status
            if grpc_context is None:
                raise
            apply_error(grpc_context, exc)
            raise WatchAborted(str(exc)[:200]) from None


FILE_CHUNK = 1024 * 1024
_HLS_NAME = re.compile(r"hls/[A-Za-z0-9][A-Za-z0-9_-]{0,100}(\.[A-Za-z0-9]{1,8})?")


def check_render_file_name(name: str) -> str:
    """The files of a render a client may read: its output and its HLS playlist + segments."""
    if name == "output.mp4" or _HLS_NAME.fullmatch(name):
        return name
    shown = repr(name if len(name) <= 60 else name[:60] + "…")
    raise InvalidInput(
        f"name {shown}: a render's readable files are 'output.mp4' and 'hls/<file>' (e.g. 'hls/index.m3u8')"
    )


async def _read_range(store: Any, key: str, offset: int) -> AsyncIterator[bytes]:
    """The object's bytes from `offset`, at most FILE_CHUNK per piece, read in a worker thread."""
    chunks = store.iter_chunks(key, FILE_CHUNK)
    skip = offset
    try:
        while (data := await asyncio.to_thread(next, chunks, None)) is not None:
            if skip >= len(data):
                skip -= len(data)
                continue
            data, skip = data[skip:], 0
            for i in range(0, len(data), FILE_CHUNK):
                yield data[i : i + FILE_CHUNK]
    finally:
        chunks.close()


def _store_checks(checker: tenancy.RefChecker | None, store: Any, renders: Any) -> list[Any]:
    """CreateRender's checks that read the store (blocking): each reference (exists, the caller's,
    size / sha256, a background decodes), then each face's kind from its header (a video face:
    dubbing, issue #15). Returns the orchestrator's specs."""
    for i, p in enumerate(renders):
        if checker is not None:
            checker.check_spec(p, f"render {i + 1}: " if len(renders) > 1 else "")
    return [tenancy.with_face_kind(store, spec_from_proto(p)) for p in renders]


def encode_page_token(after: str, state: str) -> str:
    """Opaque to clients: where the next page starts in the store's index, and the filter it is for."""
    if not after:
        return ""
    raw = json.dumps({"v": 1, "s": state, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, state: str) -> str:
    """The render id a page starts after; INVALID_ARGUMENT for a token not made by this service for
    this filter."""
    if not token:
        return ""
    bad = InvalidInput("page_token: pass back the next_page_token of the previous page unchanged")
    if len(token) > 200 or not token.isascii():
        raise bad
    try:
        d = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, version, made_for = d["a"], d["v"], d["s"]
    except (ValueError, TypeError, KeyError):
        raise bad from None
    if version != 1 or not isinstance(after, str) or not _TOKEN_ID.fullmatch(after):
        raise bad
    if made_for != state:
        raise InvalidInput(
            f"page_token: it continues a listing of state {made_for or 'any'!r}, not {state or 'any'!r}; "
            "start again without a token to change the filter"
        )
    return after
