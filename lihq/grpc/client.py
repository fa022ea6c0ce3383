"""Calling a stage over gRPC: one channel per address, the `application` metadata per app.

Serve's gRPC proxy routes by the `application` metadata; a plain gRPC server (a swapped model
outside Ray) ignores it. Errors come back as typed `lihq.errors` (see `error_from_rpc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from lihq.grpc.auth import internal_metadata
from lihq.grpc.errors import error_from_rpc

# The one set of client channel options (stages, RenderService, the batch renderer, the CLI)
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 64 << 20),  # = the servers' limit (lihq/grpc/server.py)
    # a restarted replica is reached within seconds, not after grpc's 2-minute cap
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
    # several replicas behind one name (a headless Service, or "ipv4:h1:p1,h2:p2"): spread calls
    ("grpc.lb_policy_name", "round_robin"),
)


def open_channel(address: str) -> grpc.Channel:
    """A client channel to `address` (host:port of Serve's proxy or any LIHQ gRPC server)."""
    return grpc.insecure_channel(address, options=list(CHANNEL_OPTIONS))


@dataclass(frozen=True)
class StageEndpoint:
    address: str  # host:port of Serve's gRPC proxy or of any server implementing the proto
    application: str  # Serve application name (= services/<folder>)


class StageClient:
    def __init__(self, endpoint: StageEndpoint, stub_cls: type, timeout_s: float = 600.0) -> None:
        self.endpoint = endpoint
        self.channel = open_channel(endpoint.address)
        self.stub = stub_cls(self.channel)
        self.timeout_s = timeout_s

    def call(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        fn = getattr(self.stub, method)
        try:
            return fn(
                request,
                metadata=(("application", self.endpoint.application), *internal_metadata()),
                timeout=timeout_s or self.timeout_s,
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> StageClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
