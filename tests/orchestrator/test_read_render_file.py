"""RenderService.ReadRenderFile and the Python client (lihq/client.py) over a real gRPC server with
tokens: a tenant reads only its own render's output.mp4 and hls/* files; every other name is
INVALID_ARGUMENT and another tenant's render NOT_FOUND. The client's upload / create / get / watch /
list / cancel / download / read_file all run here against the same servicer."""

from __future__ import annotations

import json

import pytest

from lihq.auth import EnvTokens, Registry
from lihq.client import Client, upload_requests
from lihq.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from lihq.storage import FileStore
from lihq.v1 import render_pb2
from orchestrator.core import Orchestrator
from orchestrator.scheduler import Limits, RetryPolicy
from orchestrator.servicer import RenderServicer, check_render_file_name
from tests.orchestrator.test_core import FakeStages
from tests.plaingrpc import plain_server

VIDEO = bytes(range(256)) * 10_000  # 2.56 MB: three 1 MiB chunks
PLAYLIST = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXTINF:2.0,\nseg00000.m4s\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rrf")
    store = FileStore(root / "store", "lihq")
    reg = Registry()
    tokens = {name: reg.add(name)[0] for name in ("alice", "bob")}
    tokens["alice-read"] = reg.add("alice", ("read",))[0]
    from lihq.auth import Authenticator

    auth = Authenticator(EnvTokens(json.dumps(json.loads(reg.to_json()))), enabled=True)
    orch = Orchestrator(
        store, FakeStages(), Limits(default_concurrency=4), RetryPolicy(attempts=2, base_s=0.001)
    )
    with plain_server(
        RenderServicer(orch, auth), [render_pb2.DESCRIPTOR.services_by_name["RenderService"]]
    ) as ch:
        clients = {n: Client(ch.lihq_address, token=t) for n, t in tokens.items()}
        face, audio = root / "face.png", root / "speech.wav"
        face.write_bytes(b"face stand-in")
        audio.write_bytes(b"speech stand-in")
        alice = clients["alice"]
        seen: list[tuple[int, int]] = []
        spec = render_pb2.RenderSpec(face=alice.upload(face, progress=lambda d, t: seen.append((d, t))))
        spec.audio.CopyFrom(alice.upload(audio))
        [r] = alice.create(spec, idempotency_key="rrf-1")
        events = list(alice.watch(r.render_id))
        rid = r.render_id
        store.put_bytes(f"renders/{rid}/output.mp4", VIDEO)
        store.put_bytes(f"renders/{rid}/hls/index.m3u8", PLAYLIST)
        store.put_bytes(f"renders/{rid}/render-secret.txt", b"not for clients")
        yield {"clients": clients, "rid": rid, "events": events, "progress": seen, "root": root}
        for c in clients.values():
            c.close()


def test_client_uploads_creates_watches_and_lists(world):
    alice, rid = world["clients"]["alice"], world["rid"]
    assert world["progress"][0] == (0, 13) and world["progress"][-1] == (13, 13)
    assert world["events"][-1].render.state == render_pb2.RENDER_STATE_SUCCEEDED
    got = alice.get(rid)
    assert got.spec.face.key.startswith("tenants/alice/inputs/")
    assert rid in [r.render_id for r in alice.list(page_size=1)]
    assert rid not in [r.render_id for r in world["clients"]["bob"].list()]
    assert alice.create(got.spec, idempotency_key="rrf-1")[0].render_id == rid  # idempotent
    assert alice.cancel(rid).state == render_pb2.RENDER_STATE_SUCCEEDED  # cancel of a finished render


def test_download_writes_the_whole_video_with_progress(world, tmp_path):
    alice, rid = world["clients"]["alice"], world["rid"]
    seen: list[tuple[int, int]] = []
    out = alice.download(rid, tmp_path / "out.mp4", lambda d, t: seen.append((d, t)))
    assert out.read_bytes() == VIDEO
    assert seen[0] == (0, len(VIDEO)) and seen[-1] == (len(VIDEO), len(VIDEO)) and len(seen) >= 4
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_read_file_playlist_and_offsets(world):
    alice, rid = world["clients"]["alice"], world["rid"]
    assert alice.read_file(rid, "hls/index.m3u8") == PLAYLIST
    f = alice.open_file(rid, "output.mp4", offset=1_500_000)
    chunks = list(f)
    assert f.total_size == len(VIDEO) and b"".join(chunks) == VIDEO[1_500_000:]
    assert max(len(c) for c in chunks) <= 1024 * 1024
    end = alice.open_file(rid, "output.mp4", offset=len(VIDEO))
    assert end.total_size == len(VIDEO) and list(end) == []
    assert world["clients"]["alice-read"].read_file(rid, "hls/index.m3u8") == PLAYLIST  # read right suffices


@pytest.mark.parametrize(
    "name",
    [
        "",
        "render.json",
        "render-secret.txt",
        "tasks/0.json",
        "../render.json",
        "hls/../render.json",
        "hls/../../x",
        "/etc/passwd",
        "hls//index.m3u8",
        "hls/",
        "hls/.hidden",
        "hls/a/b.ts",
        "hls/a..b",
        "output.mp4/../render.json",
        "OUTPUT.MP4",
        "hls/index.m3u8\x00",
        "hls\\index.m3u8",
        "hls/" + "a" * 300,
    ],
)
def test_hostile_names_are_invalid_argument(world, name):
    with pytest.raises(InvalidInput, match="readable files are 'output.mp4' and 'hls/<file>'"):
        world["clients"]["alice"].read_file(world["rid"], name)


def test_names_a_client_may_read():
    for name in ("output.mp4", "hls/index.m3u8", "hls/seg00001.m4s", "hls/init.mp4", "hls/seg_1.ts"):
        assert check_render_file_name(name) == name


def test_another_tenants_render_missing_files_and_bad_offsets(world, tmp_path):
    clients, rid = world["clients"], world["rid"]
    with pytest.raises(NotFound, match="no render"):
        clients["bob"].read_file(rid, "output.mp4")  # exactly what an unknown id answers
    with pytest.raises(NotFound, match="no render"):
        clients["bob"].download(rid, tmp_path / "stolen.mp4")
    assert not (tmp_path / "stolen.mp4").exists()
    with pytest.raises(NotFound, match="no render"):
        clients["alice"].read_file("0123456789abcdef", "output.mp4")
    with pytest.raises(NotFound, match="has no file 'hls/seg00009.m4s'"):
        clients["alice"].read_file(rid, "hls/seg00009.m4s")
    with pytest.raises(InvalidInput, match="render_id"):
        clients["alice"].read_file("../x", "output.mp4")
    with pytest.raises(InvalidInput, match="past the end"):
        list(clients["alice"].open_file(rid, "output.mp4", offset=len(VIDEO) + 1))
    with pytest.raises(InvalidInput, match="offset=-1"):
        list(clients["alice"].open_file(rid, "output.mp4", offset=-1))
    with pytest.raises(Unauthenticated):
        Client(clients["alice"].address, token="lihq_" + "A" * 43).read_file(rid, "output.mp4")


def test_upload_of_a_missing_file_and_a_read_only_token(world):
    with pytest.raises(InvalidInput, match="no such file"):
        world["clients"]["alice"].upload(world["root"] / "nope.png", what="face")
    with pytest.raises(PermissionDenied):
        world["clients"]["alice-read"].upload(world["root"] / "face.png")


def test_upload_requests_announce_the_digest_last(tmp_path):
    p = tmp_path / "Face.PNG"
    p.write_bytes(b"x" * 2_500_000)
    msgs = list(upload_requests(p))
    assert msgs[0].filename == "Face.PNG" and [len(m.data) for m in msgs[1:-1]] == [1048576, 1048576, 402848]
    assert len(msgs[-1].sha256) == 64 and not msgs[-1].data


def test_a_cancelled_watch_ends_quietly(world):
    w = world["clients"]["alice"].watch(world["rid"])
    w.cancel()
    assert list(w) == []  # cancelled by this client: no error, no more events
