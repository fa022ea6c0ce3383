"""A MediaServicer on a plain grpc.aio server (no Ray) whose address tests can hand to StageEndpoints.

`tests.plaingrpc.plain_server` yields a channel; batch and swap tests need the `host:port` instead,
because the code under test opens its own channels from configuration.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lihq.grpc.server import serve_plain
from lihq.storage.base import ObjectStore
from lihq.v1 import media_pb2
from services.media.servicer import MediaServicer


@contextmanager
def plain_media_server(store: ObjectStore) -> Iterator[str]:
    """Yield "127.0.0.1:PORT" of a MediaService over `store`; stop it on exit."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        service = media_pb2.DESCRIPTOR.services_by_name["MediaService"]
        server, holder["port"] = await serve_plain(MediaServicer(store), [service])
        started.set()
        await holder["stop"].wait()
        await server.stop(0)

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    if not started.wait(30):
        raise RuntimeError("plain media server did not start")
    try:
        yield f"127.0.0.1:{holder['port']}"
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        t.join(60)
