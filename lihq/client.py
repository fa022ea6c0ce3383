"""A small Python client for RenderService (`lihq serve`, or a cluster's Serve gRPC proxy).

    from lihq.client import Client
    from lihq.v1 import render_pb2

    c = Client("127.0.0.1:9000")                    # token: LIHQ_API_TOKEN, else $LIHQ_HOME/api-token
    face = c.upload("face.png", progress=lambda done, total: print(done, total))
    audio = c.upload("speech.wav")
    [r] = c.create(render_pb2.RenderSpec(face=face, audio=audio), idempotency_key="demo-1")
    for ev in c.watch(r.render_id):
        print(ev.message)
    c.download(r.render_id, "out.mp4")

Every call sends the `application` metadata Serve's proxy routes by and `authorization: Bearer <token>`;
gRPC errors come back as the typed errors of `lihq.errors` (through `lihq.grpc.errors.error_from_rpc`),
so `except lihq.errors.InvalidInput as e: e.message` is the server's message. Part of the core package:
it imports only `lihq.*` helpers and the generated `lihq.v1` stubs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from lihq.errors import InvalidInput
from lihq.grpc.errors import error_from_rpc

CHUNK = 1024 * 1024  # bytes per UploadInput message (the proto's suggested size)
Progress = Callable[[int, int], None]  # (bytes done, bytes in all; 0 when unknown)

STATE_NAMES = {0: "UNSPECIFIED", 1: "QUEUED", 2: "RUNNING", 3: "SUCCEEDED", 4: "FAILED", 5: "CANCELLED"}
FINISHED = frozenset({3, 4, 5})


def upload_requests(
    path: str | os.PathLike, chunk: int = CHUNK, progress: Progress | None = None
) -> Iterator[Any]:
    """The UploadInput messages for one local file: its name first, then its bytes, its sha256 last
    (the server stores nothing unless the digest it computed matches)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        yield from stream_requests(os.path.basename(os.fspath(path)), f, size, chunk, progress)


def stream_requests(
    filename: str,
    source: BinaryIO | Iterable[bytes],
    size: int = 0,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> Iterator[Any]:
    """UploadInput messages from a readable binary file or an iterable of byte blocks of any sizes."""
    from lihq.v1 import render_pb2

    digest, done = hashlib.sha256(), 0
    yield render_pb2.UploadInputRequest(filename=filename)
    if progress:
        progress(0, size)
    for block in _blocks(source, chunk):
        digest.update(block)
        done += len(block)
        yield render_pb2.UploadInputRequest(data=block)
        if progress:
            progress(done, max(size, done) if size else 0)
    yield render_pb2.UploadInputRequest(sha256=digest.hexdigest())


def _blocks(source: BinaryIO | Iterable[bytes], chunk: int) -> Iterator[bytes]:
    if hasattr(source, "read"):
        while data := source.read(chunk):  # type: ignore[union-attr]
            yield data
        return
    pending = b""
    for block in source:  # re-cut arbitrary blocks into <= chunk messages
        pending += block
        while len(pending) >= chunk:
            yield pending[:chunk]
            pending = pending[chunk:]
    if pending:
        yield pending


class RenderFile:
    """One of a render's files being read (ReadRenderFile): `total_size`, then iterate the byte chunks."""

    def __init__(self, stream: Any, first: Any) -> None:
        self._stream, self._first = stream, first
        self.total_size = int(first.total_size) if first is not None else 0

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None and self._first.data:
            yield self._first.data
        self._first = None
        try:
            for msg in self._stream:
                if msg.data:
                    yield msg.data
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    def close(self) -> None:
        self._stream.cancel()


class Watch:
    """A WatchRender stream: iterate the RenderEvents; `cancel()` ends it from any thread."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._call
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                return  # cancelled here: the end, not an error
            raise error_from_rpc(exc) from exc

    def cancel(self) -> None:
        self._call.cancel()


class Client:
    """RenderService over one gRPC channel. `token`: this argument, else LIHQ_API_TOKEN, else
    $LIHQ_HOME/api-token (`lihq.auth.client_token`); none at all sends no authorization (a server run
    with --insecure-no-auth)."""

    def __init__(
        self,
        address: str = "127.0.0.1:9000",
        token: str | None = None,
        application: str = "orchestrator",
        timeout: float = 120.0,
    ) -> None:
        from lihq.auth import client_token
        from lihq.grpc.client import open_channel
        from lihq.v1 import render_pb2_grpc

        self.address, self.application, self.timeout = address, application, timeout
        self._token = client_token(token or "")
        self._channel = open_channel(address)
        self._stub = render_pb2_grpc.RenderServiceStub(self._channel)

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        md: tuple[tuple[str, str], ...] = (("application", self.application),)
        return md + ((("authorization", f"Bearer {self._token}"),) if self._token else ())

    def _unary(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(self._stub, method)(
                request, metadata=self.metadata, timeout=timeout or self.timeout
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inputs --------------------------------------------------------------------------------
    def upload(self, path: str | os.PathLike, progress: Progress | None = None, what: str = "file") -> Any:
        """Upload one local file through UploadInput; return its ObjectRef (key, sha256, size) to put
        in a RenderSpec. `progress(done, total)` is called as the bytes go out."""
        p = Path(path)
        if not p.is_file():
            raise InvalidInput(f"{what} {str(p)!r}: no such file")
        return self._upload(upload_requests(p, progress=progress))

    def upload_stream(
        self,
        filename: str,
        source: BinaryIO | Iterable[bytes],
        size: int = 0,
        progress: Progress | None = None,
    ) -> Any:
        """Upload bytes that are not a local file (a web form's body) under `filename`."""
        return self._upload(stream_requests(filename, source, size, progress=progress))

    def _upload(self, requests: Iterator[Any]) -> Any:
        try:
            return self._stub.UploadInput(
                requests, metadata=self.metadata, timeout=max(self.timeout, 3600)
            ).object
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    # -- renders -------------------------------------------------------------------------------
    def create(
        self, specs: Any, idempotency_key: str = "", webhook_url: str = "", timeout: float | None = None
    ) -> list[Any]:
        """CreateRender with one RenderSpec or a list of them; returns the Render messages."""
        from lihq.v1 import render_pb2

        batch = [specs] if isinstance(specs, render_pb2.RenderSpec) else list(specs)
        req = render_pb2.CreateRenderRequest(
            renders=batch, idempotency_key=idempotency_key, webhook_url=webhook_url
        )
        return list(self._unary("CreateRender", req, timeout).renders)

    def get(self, render_id: str, timeout: float | None = None) -> Any:
        from lihq.v1 import render_pb2

        return self._unary("GetRender", render_pb2.GetRenderRequest(render_id=render_id), timeout)

    def cancel(self, render_id: str) -> Any:
        from lihq.v1 import render_pb2

        return self._unary("CancelRender", render_pb2.CancelRenderRequest(render_id=render_id))

    def watch(self, render_id: str, timeout: float = 86400.0) -> Watch:
        """RenderEvents: the render now, then after every change, until it ends. Iterate it;
        `.cancel()` (from any thread) ends it early."""
        from lihq.v1 import render_pb2

        req = render_pb2.WatchRenderRequest(render_id=render_id)
        return Watch(self._stub.WatchRender(req, metadata=self.metadata, timeout=timeout))

    def list_page(self, page_size: int = 0, page_token: str = "", state: int = 0) -> Any:
        """One ListRenders page (ListRendersResponse: renders, next_page_token)."""
        from lihq.v1 import render_pb2

        req = render_pb2.ListRendersRequest(page_size=page_size, page_token=page_token, state=state)
        return self._unary("ListRenders", req)

    def list(self, state: int = 0, page_size: int = 0) -> Iterator[Any]:
        """Every render the token may see, newest pages fetched lazily."""
        token = ""
        while True:
            page = self.list_page(page_size, token, state)
            yield from page.renders
            token = page.next_page_token
            if not token:
                return

    # -- outputs -------------------------------------------------------------------------------
    def open_file(
        self, render_id: str, name: str = "output.mp4", offset: int = 0, timeout: float = 3600.0
    ) -> RenderFile:
        """Start reading one of a render's files (`output.mp4`, `hls/index.m3u8`, `hls/<segment>`)."""
        from lihq.v1 import render_pb2

        req = render_pb2.ReadRenderFileRequest(render_id=render_id, name=name, offset=offset)
        stream = self._stub.ReadRenderFile(req, metadata=self.metadata, timeout=timeout)
        try:
            first = next(stream, None)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        return RenderFile(stream, first)

    def read_file(self, render_id: str, name: str = "output.mp4") -> bytes:
        """A whole (small) render file, e.g. the HLS playlist."""
        return b"".join(self.open_file(render_id, name))

    def download(
        self,
        render_id: str,
        dest: str | os.PathLike,
        progress: Progress | None = None,
        name: str = "output.mp4",
    ) -> Path:
        """Save a render's file (by default its video) to `dest`: written to a temporary name next to it
        and renamed into place when complete, so `dest` is never left half-written."""
        out = Path(dest)
        if out.is_dir():
            raise InvalidInput(f"-o {str(out)!r} is a directory: name the file to write")
        f = self.open_file(render_id, name)
        tmp = out.with_name(f".{out.name}.part-{os.getpid()}")
        done = 0
        try:
            with open(tmp, "wb") as w:
                if progress:
                    progress(0, f.total_size)
                for data in f:
                    w.write(data)
                    done += len(data)
                    if progress:
                        progress(done, f.total_size)
            if done != f.total_size:
                raise InvalidInput(f"{name}: got {done} of {f.total_size} bytes; download it again")
            os.replace(tmp, out)
        except OSError as exc:
            raise InvalidInput(f"cannot write {str(out)!r}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return out
