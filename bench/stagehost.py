"""A recording stage host: Serve apps hosted as `lihq host` does, every unary call logged.

    python -m bench.stagehost CONFIG ADDRESS CALLS_LOG FAIL_FIRST APP [APP ...]

Each call appends one JSON line to CALLS_LOG: {"method", "outcome": ok | error | injected, "outputs":
[object keys in the response], "server_s": seconds in the servicer, "store_s": seconds of it spent in
object-store calls}. The first FAIL_FIRST calls of every method answer UNAVAILABLE (a replica still
starting, or overloaded), logged as "injected". Used by bench/orchestrator_bench.py (overhead figures)
and tests/integration/test_resilience.py (call counts, injected failures).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import os
import signal
import sys
import time
from typing import Any

import grpc

from lihq import plainhost
from lihq.errors import Unavailable
from lihq_cli import serving

_STORE_S: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("store_s", default=None)
TIMED = ("put_bytes", "put_file", "put_stream", "get_bytes", "get_file", "stat", "exists", "delete")


def time_store_calls() -> None:
    """Add the time of every store call to the current request's counter (asyncio.to_thread copies
    the context into the worker thread, so calls made there are counted too)."""
    from lihq.storage.fs import FileStore
    from lihq.storage.s3 import S3Store

    for cls in (FileStore, S3Store):
        for name in TIMED:
            fn = getattr(cls, name)

            @functools.wraps(fn)
            def timed(*args: Any, _fn: Any = fn, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    acc = _STORE_S.get()
                    if acc is not None:
                        acc[0] += time.perf_counter() - t0

            setattr(cls, name, timed)


def object_keys(msg: Any) -> list[str]:
    """Every ObjectRef key in a response message, depth first."""
    out: list[str] = []
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        items = value if field.is_repeated else [value]
        if field.message_type.full_name == "lihq.v1.ObjectRef":
            out.extend(v.key for v in items if v.key)
        elif not field.message_type.GetOptions().map_entry:
            for v in items:
                out.extend(object_keys(v))
    return out


class Recording:
    def __init__(self, inner: Any, methods: set[str], log_path: str, fail_first: int) -> None:
        self._inner, self._methods, self._fail_first = inner, methods, fail_first
        self._log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._seen: dict[str, int] = {}

    def _write(self, **line: Any) -> None:
        os.write(self._log, (json.dumps(line) + "\n").encode())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self._methods:
            return attr
        return self._recorded(name, attr)

    def _recorded(self, name: str, attr: Any) -> Any:
        async def call(request: Any, grpc_context: Any = None) -> Any:
            n = self._seen[name] = self._seen.get(name, 0) + 1
            if n <= self._fail_first:
                self._write(method=name, outcome="injected", outputs=[])
                raise Unavailable(f"injected: {name} call {n} of the first {self._fail_first}")
            acc = [0.0]
            _STORE_S.set(acc)
            t0 = time.perf_counter()
            response = await attr(request, grpc_context=grpc_context)
            server_s = time.perf_counter() - t0
            code = grpc_context.code() if grpc_context is not None else None
            ok = code in (None, grpc.StatusCode.OK)
            outcome = "ok" if ok else "error"
            self._write(
                method=name, outcome=outcome, outputs=object_keys(response), server_s=server_s, store_s=acc[0]
            )
            return response

        return call


def recording(inner: Any, services: list, log_path: str, fail_first: int) -> Recording:
    """A Recording of `inner` whose class has every method of `services` (the plain gRPC server
    routes only to methods that the servicer's class defines); unary methods are recorded."""
    unary = {m.name for s in services for m in s.methods if not m.server_streaming}
    names = {m.name for s in services for m in s.methods}
    attrs = {n: property(lambda self, n=n: self.__getattr__(n)) for n in names}
    cls = type(f"Recording{type(inner).__name__}", (Recording,), attrs)
    return cls(inner, unary, log_path, fail_first)


async def main(config: str, address: str, calls: str, fail_first: int, apps: list[str]) -> None:
    from bench import noray

    noray.install()  # without Ray (the GPU suite's machine), a stand-in for the decorators
    time_store_calls()
    cfg = serving.load_serve_config(config)
    hosted = [await plainhost.instantiate(a) for a in plainhost.select_apps(cfg, apps)]
    from lihq.grpc.server import serve_plain_many

    pairs = [(recording(app.servicer, app.services, calls, fail_first), app.services) for app in hosted]
    server, port = await serve_plain_many(pairs, address)
    print(f"ready {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(grace=1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]))
