"""RenderService as a Serve app (`orchestrator`) behind the proxy: a bad spec is INVALID_ARGUMENT at
CreateRender and leaves nothing behind; a face the media stage cannot find fails the render's first task
with INVALID_ARGUMENT and the stage."""

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
        before = stub.ListRenders(render_pb2.ListRendersRequest(), metadata=serve_stack.md(), timeout=60)
        # face detection is the render's first task (CreateRender answers at once): the render fails
        # there with INVALID_ARGUMENT, its message and the stage
        [r] = stub.CreateRender(
            render_pb2.CreateRenderRequest(renders=[spec]), metadata=serve_stack.md(), timeout=60
        ).renders
        assert r.state == render_pb2.RENDER_STATE_QUEUED
        req = render_pb2.WatchRenderRequest(render_id=r.render_id)
        last = list(stub.WatchRender(req, metadata=serve_stack.md(), timeout=300))[-1].render
        assert last.state == render_pb2.RENDER_STATE_FAILED and "no face" in last.error
        assert (last.error_code, last.error_stage) == ("INVALID_ARGUMENT", "face")
        bad_text = render_pb2.RenderSpec(face=common_pb2.ObjectRef(key=wall.key), text="")
        with pytest.raises(grpc.RpcError) as ei:
            stub.CreateRender(
                render_pb2.CreateRenderRequest(renders=[bad_text]), metadata=serve_stack.md(), timeout=60
            )
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "audio or text" in ei.value.details()
        after = stub.ListRenders(render_pb2.ListRendersRequest(), metadata=serve_stack.md(), timeout=60)
        assert len(after.renders) == len(before.renders) + 1  # the bad spec left nothing behind


def test_upload_input_streams_through_the_proxy_into_the_store(serve_stack, tmp_path):
    """Client streaming through Serve's gRPC proxy: chunks in, inputs/<sha256>.<ext> out, never rewritten."""
    import hashlib

    from orchestrator.uploads import chunks

    store = open_store(StoreConfig.from_env(serve_stack.env))
    wav = espeak_wav(tmp_path / "up.wav", "Uploading through the proxy.")
    data = wav.read_bytes()
    with serve_stack.channel() as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)
        r = stub.UploadInput(chunks(wav, chunk=16_384), metadata=serve_stack.md(), timeout=120)
        assert (
            r.object.key == f"tenants/admin/inputs/{hashlib.sha256(data).hexdigest()}.wav" and not r.existed
        )
        assert store.get_bytes(r.object.key) == data
        assert stub.UploadInput(chunks(wav), metadata=serve_stack.md(), timeout=120).existed
        bad = iter([render_pb2.UploadInputRequest(filename="x.wav", data=b"abc", sha256="0" * 64)])
        with pytest.raises(grpc.RpcError) as ei:
            stub.UploadInput(bad, metadata=serve_stack.md(), timeout=60)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in ei.value.details()
