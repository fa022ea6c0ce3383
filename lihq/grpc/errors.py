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
import re
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from lihq.errors import BY_CODE, Internal, LihqError, Unavailable
from lihq.grpc.auth import check_internal

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
    # the exception's text may hold server paths or request data: it goes to the log, not to the client
    return Internal(f"internal error ({type(exc).__name__}); the server log has the details")


MAX_DETAILS = 1000


@functools.cache
def _server_paths() -> re.Pattern[str]:
    roots = sorted({tempfile.gettempdir(), "/tmp", "/var/tmp"}, key=len, reverse=True)
    return re.compile("(?:" + "|".join(re.escape(r) for r in roots) + r")/[^\s'\",;:)]*")


def short_details(message: str) -> str:
    """What a client sees of an error: server temp paths replaced by "the file", and small (a 10 kB
    echo makes proxies drop the stream)."""
    message = _server_paths().sub("the file", message)
    return message if len(message) <= MAX_DETAILS else message[: MAX_DETAILS - 1] + "…"


def apply_error(context: _Context | None, exc: BaseException) -> LihqError:
    """Set the status code and details of `exc` on `context`; return the typed error."""
    err = as_lihq_error(exc)
    if context is not None:
        context.set_code(status_code(err))
        context.set_details(short_details(err.message))
    return err


def rpc_method(
    response_type: type[R],
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Decorate `async def Method(self, request, grpc_context=None) -> Response`.

    On any error the code and message are set on the context and an empty response is returned:
    Serve's proxy (checked on 2.60) then answers with that status, and an expected error (bad input)
    does not fill the replica's log with a traceback. Unexpected exceptions are logged with their
    traceback and reported as INTERNAL with a one-line message. Without a context (an in-process
    call) the typed error is raised instead. Unless the servicer sets `internal_only = False`
    (RenderService, which authenticates clients itself), every call must carry the internal service
    credential (lihq.grpc.auth.check_internal), else UNAUTHENTICATED.
    """

    def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(self: Any, request: Any, grpc_context: _Context | None = None) -> R:
            try:
                if getattr(self, "internal_only", True):  # stage services: the internal credential
                    check_internal(grpc_context)
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


class AppDeploying(Unavailable):
    """UNAVAILABLE because the stage's Serve application is not (yet) deployed — after a restart, during
    a redeploy. Callers retry it for as long as a deployment takes (RetryPolicy.deploy_wait_s), not
    just a few attempts."""


# Serve's gRPC proxy answers NOT_FOUND "Application 'x' not found." while the app is (re)deploying
# (ray/serve/_private/proxy.py not_found_response): that is transient, unlike a missing object.
_APP_NOT_FOUND = re.compile(r"^Application '[^']+' not found\.")


def error_from_rpc(exc: grpc.RpcError) -> LihqError:
    """Client side: turn a gRPC error back into the typed error of its status code (every code has
    its own class, so `status_code(error_from_rpc(e)) == e.code()`). A Serve proxy's "application not
    found" (the app is still deploying) becomes UNAVAILABLE, retried like one. An error without a code
    is UNKNOWN; one claiming OK is a bug (INTERNAL)."""
    code = exc.code() if hasattr(exc, "code") else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.NOT_FOUND and _APP_NOT_FOUND.match(details or ""):
        return AppDeploying(f"the Serve application is not deployed (yet): {details}")
    if code == grpc.StatusCode.OK:
        return Internal(f"a call failed with status OK: {details or 'no details'}")
    return BY_CODE[code.name](details or code.name)
