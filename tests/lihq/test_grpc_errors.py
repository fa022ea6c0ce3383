"""Every gRPC status code survives the trip server error -> status -> client error (lihq/grpc/errors.py)."""

from __future__ import annotations

import grpc
import pytest

from lihq import errors
from lihq.grpc.errors import AppDeploying, apply_error, error_from_rpc, status_code


class _Rpc(grpc.RpcError):
    def __init__(self, code, details=""):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class _Context:
    def set_code(self, code):
        self.code = code

    def set_details(self, details):
        self.details = details


ERROR_CODES = [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK]


@pytest.mark.parametrize("code", ERROR_CODES, ids=lambda c: c.name)
def test_every_status_code_round_trips(code):
    err = error_from_rpc(_Rpc(code, f"peer said {code.name.lower()}"))
    assert isinstance(err, errors.LihqError)
    assert err.code == code.name and status_code(err) is code
    assert err.message == f"peer said {code.name.lower()}"
    ctx = _Context()  # and back out again, as a servicer relays a stage's error to its own caller
    apply_error(ctx, err)
    assert ctx.code is code and ctx.details == err.message


def test_each_code_has_its_own_class_and_only_transient_ones_retry():
    assert set(errors.BY_CODE) == {c.name for c in ERROR_CODES}
    retried = {name for name, cls in errors.BY_CODE.items() if cls.retryable}
    assert retried == {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}


def test_odd_statuses():
    assert error_from_rpc(_Rpc(grpc.StatusCode.UNIMPLEMENTED)).message == "UNIMPLEMENTED"  # no details
    ok = error_from_rpc(_Rpc(grpc.StatusCode.OK, "huh"))
    assert isinstance(ok, errors.Internal) and "status OK" in ok.message
    no_code = error_from_rpc(grpc.RpcError("channel closed"))
    assert isinstance(no_code, errors.Unknown) and no_code.code == "UNKNOWN"
    deploying = error_from_rpc(_Rpc(grpc.StatusCode.NOT_FOUND, "Application 'fomm' not found."))
    assert isinstance(deploying, AppDeploying) and deploying.retryable
