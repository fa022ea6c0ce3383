"""Apply typed errors to gRPC calls — the one place where `lihq.errors` meet `grpc.StatusCode`.

Ray Serve turns an uncaught exception into INTERNAL. `rpc_method` wraps a deployment (or servicer)
method so that a `LihqError` becomes its own status code with its message, and anything else becomes
INTERNAL with a short message (the traceback goes to the log, not to the client).

Ray Serve gRPC methods receive the context as a keyword argument named `grpc_context`
(`RayServegRPCContext`); a plain `grpc.aio` servicer receives `context`. Both expose
`set_code` / `set_details`, which is all we use here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from lihq.errors import BY_CODE, Internal, LihqError

log = logging.getLogger("lihq.grpc")

R = TypeVar("R")


class _Context(Protocol):
    def set_code(self, code: grpc.StatusCode) -> None: ...
    def set_details(self, details: str) -> None: ...


def status_code(err: LihqError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.code, grpc.StatusCode.INTERNAL)


def as_lihq_error(exc: BaseException) -> LihqError:
    """A typed error for any exception: unknown ones are bugs (INTERNAL)."""
    if isinstance(exc, LihqError):
        return exc
    return Internal(f"internal error: {type(exc).__name__}: {exc}")


def apply_error(context: _Context | None, exc: BaseException) -> LihqError:
    """Set the status code and details of `exc` on `context`; return the typed error."""
    err = as_lihq_error(exc)
    if context is not None:
        context.set_code(status_code(err))
        context.set_details(err.message)
    return err


def rpc_method(
    response_type: type[R],
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Decorate `async def Method(self, request, grpc_context=None) -> Response`.

    On any error the code and message are set on the context and an empty response is returned:
    Serve's proxy (checked on 2.60) then answers with that status, and an expected error (bad input)
    does not fill the replica's log with a traceback. Unexpected exceptions are logged with their
    traceback and reported as INTERNAL with a one-line message. Without a context (an in-process
    call) the typed error is raised instead.
    """

    def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(self: Any, request: Any, grpc_context: _Context | None = None) -> R:
            try:
                return await fn(self, request, grpc_context)
            except LihqError as exc:
                if grpc_context is None:
                    raise
                apply_error(grpc_context, exc)
                log.info("%s -> %s: %s", fn.__name__, exc.code, exc.message)
                return response_type()
            except Exception as exc:
                err = as_lihq_error(exc)
                log.exception("%s failed: %s", fn.__name__, err.message)
                if grpc_context is None:
                    raise err from exc
                apply_error(grpc_context, err)
                return response_type()

        wrapper.response_type = response_type  # type: ignore[attr-defined]
        return wrapper

    return decorate


def error_from_rpc(exc: grpc.RpcError) -> LihqError:
    """Client side: turn a gRPC error back into the typed error of its status code."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = BY_CODE.get(code.name, Internal)
    return cls(details or code.name)
