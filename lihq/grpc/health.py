"""The standard gRPC health service (grpc.health.v1) for Ray Serve stage apps.

Serve's gRPC proxy routes a call to the deployment method named like the RPC, inside the application
named by the `application` metadata. Mixing `HealthMixin` into a stage deployment answers
`grpc.health.v1.Health/Check` per application, so load balancers and `grpc_health_probe
-rpc-header application:<app>` can probe each stage; plain grpc.aio servers use grpcio-health-checking's
own servicer instead (lihq.grpc.server).
"""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2


class HealthMixin:
    """Adds `Check`. Override `healthy()` to report NOT_SERVING (e.g. weights failed to load)."""

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
