"""The standard gRPC health service (grpc.health.v1) for Ray Serve stage apps.

Serve's gRPC proxy routes a call to the deployment method named like the RPC, inside the application
named by the `application` metadata. Mixing `HealthMixin` into a stage deployment answers
`grpc.health.v1.Health/Check` per application, so load balancers and `grpc_health_probe
-rpc-header application:<app>` can probe each stage; plain grpc.aio servers use grpcio-health-checking's
own servicer instead (lihq.grpc.server).
"""

from __future__ import annotations

import functools
from typing import Any

import grpc
from grpc_health.v1 import health_pb2


@functools.cache
def _rpc_table() -> dict[str, tuple[str, type, bool]]:
    """Every LIHQ RPC: method name -> (service full name, response class, server streaming)."""
    from google.protobuf import message_factory

    from lihq.plainhost import all_services

    out = {}
    for svc in all_services():
        for m in svc.methods:
            resp = message_factory.GetMessageClass(m.output_type)
            out.setdefault(m.name, (svc.full_name, resp, m.server_streaming))
    return out


def _app_name() -> str:
    import sys

    if "ray.serve" not in sys.modules:
        return "this server"
    try:
        from ray import serve

        return serve.get_replica_context().app_name
    except Exception:  # noqa: BLE001 - outside a Serve replica
        return "this server"


def _wrong_app(name: str) -> Any:
    """A handler answering UNIMPLEMENTED for an RPC of another service: what a call with the wrong
    `application` metadata reaches (Serve's proxy routes by that metadata, not by service)."""
    service, resp_cls, streaming = _rpc_table()[name]

    def fail(grpc_context: Any) -> str:
        message = (
            f"{service}/{name} is not served by the application {_app_name()!r}: set the 'application' "
            "metadata to the app that serves it (RenderService: application=orchestrator)"
        )
        if grpc_context is not None:
            grpc_context.set_code(grpc.StatusCode.UNIMPLEMENTED)
            grpc_context.set_details(message)
        return message

    if streaming:

        async def stream(request: Any, grpc_context: Any = None):
            raise NotImplementedError(fail(grpc_context))
            yield  # pragma: no cover - makes this an async generator

        stream.__name__ = name
        return stream

    async def unary(request: Any, grpc_context: Any = None) -> Any:
        fail(grpc_context)
        return resp_cls()

    unary.__name__ = name
    return unary


class HealthMixin:
    """Adds `Check`. Override `healthy()` to report NOT_SERVING (e.g. weights failed to load).

    Also answers UNIMPLEMENTED (never a traceback) for the RPCs of other LIHQ services, which a call with
    a wrong `application` metadata reaches through Serve's proxy."""

    def __getattr__(self, name: str) -> Any:
        if name[:1].isupper() and name in _rpc_table():
            return _wrong_app(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def healthy(self) -> bool:
        return True

    async def Check(self, request: health_pb2.HealthCheckRequest, grpc_context: Any = None):  # noqa: N802
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.healthy()
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        return health_pb2.HealthCheckResponse(status=status)


# Import path for Serve's gRPC proxy `grpc_servicer_functions`.
HEALTH_SERVICER_FUNCTION = "grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server"
