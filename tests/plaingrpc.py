"""Host a servicer on a plain grpc.aio server in a background thread (one loop per server).

Use it from a module-scoped fixture (grpc.aio binds to the first event loop that uses it):

    @pytest.fixture(scope="module")
    def stub(...):
        with plain_server(MyServicer(store), [my_pb2.DESCRIPTOR.services_by_name["MyService"]]) as ch:
            yield my_pb2_grpc.MyServiceStub(ch)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc

from lihq.grpc.server import serve_plain


@contextmanager
def plain_server(servicer: Any, services: Sequence[Any]) -> Iterator[grpc.Channel]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        server, holder["port"] = await serve_plain(servicer, services)
        started.set()
        await holder["stop"].wait()
        await server.stop(0)

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    if not started.wait(30):
        raise RuntimeError("plain gRPC server did not start")
    address = f"127.0.0.1:{holder['port']}"
    ch = grpc.insecure_channel(address)
    ch.lihq_address = address  # for clients that dial by address (the CLI)
    try:
        yield ch
    finally:
        ch.close()
        loop.call_soon_threadsafe(holder["stop"].set)
        t.join(60)
        if t.is_alive():
            raise RuntimeError("plain gRPC server did not stop")
