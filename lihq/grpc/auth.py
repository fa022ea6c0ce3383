"""Server-side credentials of LIHQ's gRPC services.

Two kinds of callers reach the same Serve gRPC proxy:

* clients call RenderService with `authorization: Bearer <api token>` (lihq.auth: tenants, rights);
* the orchestrator calls the stage services (MediaService, MotionService, ...) with the internal service
  credential `x-lihq-internal-token: <LIHQ_INTERNAL_TOKEN>`. Every stage method checks it (`rpc_method`
  does, see lihq.grpc.errors), so a tenant token cannot call MediaService.Encode & co.

`LIHQ_INTERNAL_TOKEN` comes from a Secret in Kubernetes (k8s/README.md); `lihq serve` and `lihq render`
generate one per run when it is unset (`ensure_internal_token`) before Ray starts, so the local replicas
inherit it. A stage server without it refuses every call (fail closed), unless authentication is off
(`LIHQ_AUTH=off`, i.e. `lihq serve --insecure-no-auth`).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from typing import Any

from lihq.errors import Unauthenticated

INTERNAL_HEADER = "x-lihq-internal-token"
INTERNAL_ENV = "LIHQ_INTERNAL_TOKEN"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def internal_token(env: Mapping[str, str] | None = None) -> str:
    return _env(env).get(INTERNAL_ENV, "").strip()


def ensure_internal_token() -> str:
    """Set LIHQ_INTERNAL_TOKEN in this process's environment if it is unset; return it."""
    token = internal_token()
    if not token:
        token = secrets.token_urlsafe(32)
        os.environ[INTERNAL_ENV] = token
    return token


def internal_metadata(env: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The metadata a stage call carries (empty when no internal token is configured)."""
    token = internal_token(env)
    return ((INTERNAL_HEADER, token),) if token else ()


def metadata_of(grpc_context: Any) -> dict[str, str]:
    """Invocation metadata of a Ray Serve (`RayServegRPCContext`) or grpc.aio context, as a dict."""
    if grpc_context is None:
        return {}
    try:
        items = grpc_context.invocation_metadata() or ()
    except Exception:  # noqa: BLE001 - a context without metadata: nothing sent
        return {}
    out: dict[str, str] = {}
    for item in items:
        key, value = (item.key, item.value) if hasattr(item, "key") else item
        if isinstance(value, bytes):
            continue  # binary (-bin) headers carry nothing we read
        out[str(key).lower()] = str(value)
    return out


def check_internal(grpc_context: Any, env: Mapping[str, str] | None = None) -> None:
    """Raise Unauthenticated unless the call carries the internal service credential.

    In-process calls (no context) are trusted; with authentication off everything passes."""
    from lihq.auth import auth_enabled

    if grpc_context is None or not auth_enabled(env):
        return
    expected = internal_token(env)
    if not expected:
        raise Unauthenticated(
            "stage services accept only the orchestrator's calls, and this server has no "
            f"{INTERNAL_ENV} configured"
        )
    sent = metadata_of(grpc_context).get(INTERNAL_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Unauthenticated(
            "stage services are internal: only the orchestrator may call them (missing or wrong "
            f"{INTERNAL_HEADER}); clients call RenderService"
        )
