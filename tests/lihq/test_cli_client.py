"""`lihq submit / watch / status / cancel / list` against a RenderService on a plain gRPC host
(stages faked in-process at the edge; the real stages are the e2e test's)."""

from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner
from PIL import Image
from skimage.data import astronaut

from lihq.storage import FileStore
from lihq.v1 import render_pb2
from lihq_cli.main import cli
from orchestrator.core import Orchestrator
from orchestrator.scheduler import Limits, RetryPolicy
from orchestrator.servicer import RenderServicer
from tests.mediafiles import espeak_wav
from tests.orchestrator.test_core import FakeStages
from tests.plaingrpc import plain_server


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-client")
    store = FileStore(root / "store", "lihq")
    orch = Orchestrator(
        store, FakeStages(), Limits(default_concurrency=4), RetryPolicy(attempts=2, base_s=0.001)
    )
    with plain_server(RenderServicer(orch), [render_pb2.DESCRIPTOR.services_by_name["RenderService"]]) as ch:
        yield root, ch.lihq_address


def run(*args, env):
    return CliRunner().invoke(cli, list(args), env=env)


def test_submit_watch_status_list(service, tmp_path):
    root, address = service
    env = {"LIHQ_STORE_DIR": str(tmp_path / "not-the-servers-store")}  # inputs go up through the RPC
    Image.fromarray(astronaut()).save(tmp_path / "f.png")
    wav = espeak_wav(tmp_path / "a.wav", "Hi.")
    r = run("submit", "--face", str(tmp_path / "f.png"), "--audio", str(wav), "--address", address, env=env)
    assert r.exit_code == 0, r.output
    rid = r.output.strip()
    w = run("watch", rid, "--address", address, env=env)
    assert w.exit_code == 0 and "SUCCEEDED" in w.output.splitlines()[-1]
    s = run("status", rid, "--address", address, env=env)
    assert rid in s.output and "output=renders/x/output.mp4" in s.output
    assert rid in run("list", "--address", address, env=env).output
    bad = run("status", "0123456789abcdef", "--address", address, env=env)
    assert bad.exit_code == 1 and "error: no render" in bad.output and "Traceback" not in bad.output
    both = run("submit", "--face", str(tmp_path / "f.png"), "--address", address, env=env)
    assert both.exit_code == 2 and "exactly one of --audio or --text" in both.output
    assert not (tmp_path / "not-the-servers-store").exists()


def test_upload_stores_content_addressed_and_never_rewrites(service, tmp_path):
    root, address = service
    store = FileStore(root / "store", "lihq")
    wav = espeak_wav(tmp_path / "speech.WAV", "Hello.")
    before = wav.read_bytes()
    r = run("upload", str(wav), "--address", address, env={})
    assert r.exit_code == 0, r.output
    key = r.output.split()[0]
    assert key == f"inputs/{hashlib.sha256(before).hexdigest()}.wav"
    assert store.get_bytes(key) == before and wav.read_bytes() == before
    mtime = (root / "store" / "lihq" / key).stat().st_mtime_ns
    again = run("upload", str(wav), "--address", address, env={})
    assert again.output.split()[0] == key
    assert (root / "store" / "lihq" / key).stat().st_mtime_ns == mtime  # not rewritten
    missing = run("upload", str(tmp_path / "nope.png"), "--address", address, env={})
    assert missing.exit_code != 0 and "no such file" in missing.output and "Traceback" not in missing.output


def test_download_writes_the_video_and_refuses_other_files(service, tmp_path):
    root, address = service
    store = FileStore(root / "store", "lihq")
    wav = espeak_wav(tmp_path / "a.wav", "Hi.")
    Image.fromarray(astronaut()).save(tmp_path / "f.png")
    rid = run("submit", "--face", str(tmp_path / "f.png"), "--audio", str(wav), "--address", address, env={})
    rid = rid.output.strip()
    video = bytes(range(256)) * 9000
    store.put_bytes(f"renders/{rid}/output.mp4", video)
    r = run("download", rid, "-o", str(tmp_path / "out.mp4"), "--address", address, env={})
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out.mp4").read_bytes() == video
    bad = run(
        "download", rid, "--file", "render.json", "-o", str(tmp_path / "x"), "--address", address, env={}
    )
    assert bad.exit_code == 2 and "error: name 'render.json'" in bad.output and not (tmp_path / "x").exists()
    gone = run("download", "0123456789abcdef", "-o", str(tmp_path / "y"), "--address", address, env={})
    assert gone.exit_code == 1 and "error: no render" in gone.output and "Traceback" not in gone.output
