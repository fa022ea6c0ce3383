"""Typed errors, each carrying the gRPC status code it maps to (docs/architecture.md §5).

Every layer raises one of these; transports (Ray Serve gRPC methods, plain grpc.aio servers, the CLI)
translate them in exactly one place each: `lihq.grpc.errors` and `lihq_cli.main`.
The modules here import nothing from grpc, so nets and runners stay transport-free; the code is the
name of a `grpc.StatusCode` member.
"""

from __future__ import annotations


class LihqError(Exception):
    """Base class. `code` names the grpc.StatusCode member; `retryable` tells clients to back off and retry."""

    code: str = "INTERNAL"
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(LihqError):
    """The caller sent something that cannot work (bad media, bad parameter, bad key). Not retried."""

    code = "INVALID_ARGUMENT"


class NotFound(LihqError):
    """A referenced object (input, cache entry, render) does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(LihqError):
    code = "ALREADY_EXISTS"


class PermissionDenied(LihqError):
    """The store refused our credentials (wrong access/secret key, no access to the bucket)."""

    code = "PERMISSION_DENIED"


class Unauthenticated(LihqError):
    """No credentials, or credentials nobody issued (or revoked): the caller must authenticate."""

    code = "UNAUTHENTICATED"


class WeightsMissing(LihqError):
    """A checkpoint is not on disk; the message names the `lihq weights fetch` command that fixes it."""

    code = "FAILED_PRECONDITION"

    def __init__(self, message: str, *, weight: str | None = None) -> None:
        super().__init__(message)
        self.weight = weight


class FailedPrecondition(LihqError):
    code = "FAILED_PRECONDITION"


class ResourceExhausted(LihqError):
    """GPU out of memory or queue full: the caller should retry later."""

    code = "RESOURCE_EXHAUSTED"
    retryable = True


class Unavailable(LihqError):
    """A dependency (the object store, a stage) is unreachable after our own bounded retries."""

    code = "UNAVAILABLE"
    retryable = True


class Cancelled(LihqError):
    code = "CANCELLED"


class DeadlineExceeded(LihqError):
    code = "DEADLINE_EXCEEDED"
    retryable = True


class Internal(LihqError):
    """A bug: something that should not happen whatever the input."""

    code = "INTERNAL"


class PeerStatus(LihqError):
    """A status LIHQ never raises itself but another service may answer (UNKNOWN, ABORTED, OUT_OF_RANGE,
    UNIMPLEMENTED, DATA_LOSS): relayed with its own code, so it round-trips instead of becoming
    INTERNAL. One subclass per code, named after it (`Unimplemented`, `DataLoss`, …)."""


def _peer_status(code: str) -> type[PeerStatus]:
    name = "".join(part.capitalize() for part in code.split("_"))
    return type(name, (PeerStatus,), {"code": code, "__module__": __name__, "__qualname__": name})


Unknown = _peer_status("UNKNOWN")
Aborted = _peer_status("ABORTED")
OutOfRange = _peer_status("OUT_OF_RANGE")
Unimplemented = _peer_status("UNIMPLEMENTED")
DataLoss = _peer_status("DATA_LOSS")


# (gRPC code name) -> class, for clients that turn a status back into a typed error: every
# grpc.StatusCode but OK has one (tests/lihq/test_grpc_errors.py).
BY_CODE: dict[str, type[LihqError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        Cancelled,
        DeadlineExceeded,
        Internal,
        Unknown,
        Aborted,
        OutOfRange,
        Unimplemented,
        DataLoss,
    )
}
