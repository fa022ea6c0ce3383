"""RenderService.UploadInput: chunks -> inputs/<sha256>.<ext>; every bad stream is INVALID_ARGUMENT and
leaves nothing in the store. Exercised over a real gRPC client stream on a plain grpc.aio host."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from lihq.storage import FileStore
from lihq.v1 import render_pb2, render_pb2_grpc
from orchestrator.core import Orchestrator
from orchestrator.servicer import RenderServicer
from orchestrator.uploads import chunks
from tests.orchestrator.test_core import FakeStages
from tests.plaingrpc import plain_server

Req = render_pb2.UploadInputRequest


@pytest.fixture(scope="module")
def upload_service(tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads")
    store = FileStore(root, "lihq")
    servicer = RenderServicer(Orchestrator(store, FakeStages()))
    with plain_server(servicer, [render_pb2.DESCRIPTOR.services_by_name["RenderService"]]) as ch:
        yield store, render_pb2_grpc.RenderServiceStub(ch)


def inputs(store) -> list[str]:
    return [i.key for i in store.list("inputs/")]


def test_a_chunked_file_is_stored_once_under_its_digest(upload_service, tmp_path):
    store, stub = upload_service
    data = bytes(range(256)) * 5000  # 1.28 MB: several chunks
    path = tmp_path / "Clip.MP4"
    path.write_bytes(data)
    r = stub.UploadInput(chunks(path, chunk=300_000), timeout=30)
    digest = hashlib.sha256(data).hexdigest()
    assert r.object.key == f"inputs/{digest}.mp4" and r.object.sha256 == digest
    assert r.object.size == len(data) and not r.existed
    assert store.get_bytes(r.object.key) == data
    again = stub.UploadInput(chunks(path), timeout=30)
    assert again.object.key == r.object.key and again.existed


@pytest.mark.parametrize(
    "messages, needle",
    [
        ([], "stream was empty"),
        ([Req(data=b"abc")], "must name the file"),
        ([Req(filename="a.png")], "is empty"),
        ([Req(filename="a.png", data=b"abc"), Req(sha256="0" * 64)], "does not match"),
        ([Req(filename="face.pn-g", data=b"abc")], "extension"),
        ([Req(filename="a.png", data=b"abc")], "did not announce the file's sha256"),  # cut off: no digest
        ([Req(filename="x" * 300 + ".png", data=b"abc")], "longer than 255"),
        ([Req(filename="big.bin", data=b"x" * 600)], "over the server's limit"),
    ],
)
def test_bad_streams_are_invalid_argument_and_store_nothing(upload_service, monkeypatch, messages, needle):
    store, stub = upload_service
    monkeypatch.setenv("LIHQ_MAX_UPLOAD_BYTES", "500")
    before = inputs(store)
    with pytest.raises(grpc.RpcError) as ei:
        stub.UploadInput(iter(messages), timeout=30)
    quota = needle.startswith("over")  # a quota: RESOURCE_EXHAUSTED; everything else is the caller's input
    want = grpc.StatusCode.RESOURCE_EXHAUSTED if quota else grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.code() == want
    assert needle in ei.value.details()
    assert inputs(store) == before
