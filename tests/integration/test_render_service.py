"""RenderService as a Serve app (`orchestrator`) behind the proxy: creation-time validation reaches the
media stage through the proxy; bad input is INVALID_ARGUMENT and leaves nothing behind."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from PIL import Image

from lihq.config import StoreConfig
from lihq.storage import open_store
from lihq.v1 import common_pb2, render_pb2, render_pb2_grpc
from tests.mediafiles import espeak_wav

pytestmark = pytest.mark.integration
MD = (("application", "orchestrator"),)


def test_create_render_validates_inputs_through_the_stages(serve_stack, tmp_path):
    store = open_store(StoreConfig.from_env(serve_stack.env))
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(tmp_path / "wall.png")
    wall = store.put_file("uploads/it/wall.png", tmp_path / "wall.png")
    speech = store.put_file("uploads/it/rs.wav", espeak_wav(tmp_path / "rs.wav", "Hi."))
    spec = render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key=wall.key), audio=common_pb2.ObjectRef(key=speech.key)
    )
    with serve_stack.channel() as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)
        before = stub.ListRenders(render_pb2.ListRendersRequest(), metadata=MD, timeout=60)
        with pytest.raises(grpc.RpcError) as ei:
            stub.CreateRender(render_pb2.CreateRenderRequest(renders=[spec]), metadata=MD, timeout=120)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no face" in ei.value.details()
        bad_text = render_pb2.RenderSpec(face=common_pb2.ObjectRef(key=wall.key), text="")
        with pytest.raises(grpc.RpcError) as ei:
            stub.CreateRender(render_pb2.CreateRenderRequest(renders=[bad_text]), metadata=MD, timeout=60)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "audio or text" in ei.value.details()
        after = stub.ListRenders(render_pb2.ListRendersRequest(), metadata=MD, timeout=60)
        assert len(after.renders) == len(before.renders)  # nothing half-done was left behind


def test_upload_input_streams_through_the_proxy_into_the_store(serve_stack, tmp_path):
    """Client streaming through Serve's gRPC proxy: chunks in, inputs/<sha256>.<ext> out, never rewritten."""
    import hashlib

    from orchestrator.uploads import chunks

    store = open_store(StoreConfig.from_env(serve_stack.env))
    wav = espeak_wav(tmp_path / "up.wav", "Uploading through the proxy.")
    data = wav.read_bytes()
    with serve_stack.channel() as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)
        r = stub.UploadInput(chunks(wav, chunk=16_384), metadata=MD, timeout=120)
        assert r.object.key == f"inputs/{hashlib.sha256(data).hexdigest()}.wav" and not r.existed
        assert store.get_bytes(r.object.key) == data
        assert stub.UploadInput(chunks(wav), metadata=MD, timeout=120).existed
        bad = iter([render_pb2.UploadInputRequest(filename="x.wav", data=b"abc", sha256="0" * 64)])
        with pytest.raises(grpc.RpcError) as ei:
            stub.UploadInput(bad, metadata=MD, timeout=60)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in ei.value.details()
