"""API tokens, tenants and the internal stage credential, on plain grpc.aio hosts (fast; the same checks
through Serve's real gRPC proxy are in tests/security)."""

from __future__ import annotations

import hashlib
import os
import stat

import grpc
import pytest
from click.testing import CliRunner

from lihq import auth
from lihq.errors import InvalidInput, PermissionDenied, ResourceExhausted, Unauthenticated
from lihq.grpc.auth import INTERNAL_HEADER, check_internal, metadata_of
from lihq.storage import FileStore
from lihq.v1 import common_pb2, media_pb2, media_pb2_grpc, render_pb2, render_pb2_grpc
from orchestrator.core import Orchestrator
from orchestrator.servicer import RenderServicer
from tests.orchestrator.test_core import FakeStages
from tests.plaingrpc import plain_server

RENDER_SERVICE = render_pb2.DESCRIPTOR.services_by_name["RenderService"]


# -- the registry -------------------------------------------------------------------------------------
def test_the_registry_keeps_hashes_only_and_revocation_takes_effect_at_once(tmp_path):
    tf = auth.TokenFile(tmp_path / "tokens.json")
    reg = tf.load()
    token, entry = reg.add("acme")
    tf.save(reg)
    raw = (tmp_path / "tokens.json").read_text()
    assert token not in raw and hashlib.sha256(token.encode()).hexdigest() in raw
    assert stat.S_IMODE(os.stat(tmp_path / "tokens.json").st_mode) == 0o600
    a = auth.Authenticator(tf, enabled=True)
    p = a.authenticate({"authorization": f"Bearer {token}"})
    assert (p.tenant, p.rights, p.token_id) == ("acme", ("read", "write"), entry.id)
    reg = tf.load()
    reg.revoke(entry.id)
    tf.save(reg)
    with pytest.raises(Unauthenticated, match="invalid or revoked"):
        a.authenticate({"authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    "md, needle",
    [
        ({}, "missing credentials"),
        ({"authorization": ""}, "missing credentials"),
        ({"authorization": "Basic abc"}, "malformed"),
        ({"authorization": "Bearer"}, "malformed"),
        ({"authorization": "Bearer lihq_nottherightoneatallxxxxxxxxxxx"}, "invalid or revoked"),
        ({"authorization": "Bearer " + "x" * 5000}, "invalid or revoked"),
        ({"authorization": "Bearer ../../etc/passwd"}, "invalid or revoked"),
    ],
)
def test_missing_malformed_and_unknown_tokens_are_unauthenticated(tmp_path, md, needle):
    with pytest.raises(Unauthenticated, match=needle) as ei:
        auth.Authenticator(auth.TokenFile(tmp_path / "none.json"), enabled=True).authenticate(md)
    assert len(ei.value.message) < 120


def test_rights_tenant_names_and_quotas():
    p = auth.Principal("acme", ("read",))
    p.require("read", "read renders")
    with pytest.raises(PermissionDenied, match="lacks the 'write' right"):
        p.require("write", "create renders")
    for bad in ("", "Acme", "a" * 41, "../x", "a b"):
        with pytest.raises(InvalidInput):
            auth.check_tenant(bad)
    with pytest.raises(InvalidInput):
        auth.check_rights(["root"])
    q = auth.Quotas.from_env({"LIHQ_QUOTA_RUNNING": "2", "LIHQ_QUOTA_RENDERS_PER_REQUEST": "3"})
    q.check_request(3)
    with pytest.raises(ResourceExhausted, match="at most 3"):
        q.check_request(4)
    with pytest.raises(ResourceExhausted, match="limit is 2"):
        q.check_running(1, 2)
    with pytest.raises(InvalidInput):
        auth.Quotas.from_env({"LIHQ_QUOTA_RUNNING": "-1"})


def test_serve_creates_one_admin_token_0600_and_the_cli_reads_it(tmp_path):
    env = {"LIHQ_HOME": str(tmp_path / "home")}
    lines = auth.prepare_serve(False, env)
    path = tmp_path / "home" / "api-token"
    assert str(path) in lines[0] and env["LIHQ_AUTH"] == "on"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = path.read_text().strip()
    assert auth.client_token("", env) == token
    p = auth.Authenticator(auth.TokenFile(auth.tokens_file(env)), enabled=True).authenticate(
        {"authorization": f"Bearer {token}"}
    )
    assert p.admin and p.tenant == "admin"
    auth.prepare_serve(False, env)  # a restart keeps the token
    assert path.read_text().strip() == token
    insecure = {"LIHQ_HOME": str(tmp_path / "h2")}
    assert "OFF" in auth.prepare_serve(True, insecure)[0] and insecure["LIHQ_AUTH"] == "off"
    assert not (tmp_path / "h2" / "api-token").exists()


def test_serve_refuses_a_read_only_registry_without_tokens(tmp_path, monkeypatch):
    reg = tmp_path / "secret" / "tokens.json"
    reg.parent.mkdir()
    reg.write_text('{"tokens": []}')
    monkeypatch.setattr(auth.os, "access", lambda path, mode: False)  # a mounted Secret (root ignores modes)
    with pytest.raises(InvalidInput, match="no active token"):
        auth.prepare_serve(False, {"LIHQ_HOME": str(tmp_path), "LIHQ_TOKENS_FILE": str(reg)})


def test_tokens_cli_add_list_revoke(tmp_path):
    runner = CliRunner()
    from lihq_cli.main import cli

    env = {"LIHQ_HOME": str(tmp_path)}
    r = runner.invoke(cli, ["tokens", "add", "acme", "--rights", "read"], env=env)
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[0]
    assert token.startswith("lihq_") and len(token) > 40
    listed = runner.invoke(cli, ["tokens", "list"], env=env).output
    assert "acme" in listed and "read" in listed and token not in listed and "active" in listed
    tid = listed.split()[0]
    assert runner.invoke(cli, ["tokens", "revoke", tid], env=env).exit_code == 0
    assert "revoked" in runner.invoke(cli, ["tokens", "list"], env=env).output
    bad = runner.invoke(cli, ["tokens", "add", "Not/A/Tenant"], env=env)
    assert bad.exit_code == 2 and bad.output.startswith("error: tenant")
    assert runner.invoke(cli, ["tokens", "revoke", "nobody"], env=env).exit_code == 2


# -- RenderService with tenants, over gRPC -------------------------------------------------------------
@pytest.fixture(scope="module")
def tenants(tmp_path_factory):
    root = tmp_path_factory.mktemp("tenants")
    store = FileStore(root / "store", "lihq")
    tf = auth.TokenFile(root / "tokens.json")
    reg = tf.load()
    tokens = {
        "a": reg.add("acme")[0],
        "b": reg.add("bravo")[0],
        "ro": reg.add("acme", ("read",))[0],
        "admin": reg.add("admin", auth.RIGHTS)[0],
    }
    tf.save(reg)
    quotas = auth.Quotas(running=50, renders_per_request=2, upload_bytes=10_000)
    svc = RenderServicer(Orchestrator(store, FakeStages()), auth.Authenticator(tf, enabled=True), quotas)
    with plain_server(svc, [RENDER_SERVICE]) as ch:
        yield store, render_pb2_grpc.RenderServiceStub(ch), tokens


def md(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


def upload(stub, token: str, data: bytes, name: str = "f.png") -> str:
    reqs = [
        render_pb2.UploadInputRequest(filename=name, data=data),
        render_pb2.UploadInputRequest(sha256=hashlib.sha256(data).hexdigest()),
    ]
    return stub.UploadInput(iter(reqs), metadata=md(token), timeout=30).object.key


def code_of(fn, *args, **kw) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as ei:
        r = fn(*args, **kw)
        if hasattr(r, "__iter__") and not hasattr(r, "ListFields"):
            list(r)
    return ei.value.code()


def test_tenants_see_only_their_renders_and_reference_only_their_keys(tenants):
    store, stub, tok = tenants
    face_a = upload(stub, tok["a"], b"face of a")
    audio_a = upload(stub, tok["a"], b"audio of a", "a.wav")
    assert face_a.startswith("tenants/acme/inputs/")
    spec = render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key=face_a), audio=common_pb2.ObjectRef(key=audio_a)
    )
    [ra] = stub.CreateRender(render_pb2.CreateRenderRequest(renders=[spec]), metadata=md(tok["a"])).renders
    rid = ra.render_id
    # another tenant: NOT_FOUND for every call on that id, nothing in its list, its keys refused
    for call, req in (
        (stub.GetRender, render_pb2.GetRenderRequest(render_id=rid)),
        (stub.CancelRender, render_pb2.CancelRenderRequest(render_id=rid)),
        (stub.WatchRender, render_pb2.WatchRenderRequest(render_id=rid)),
    ):
        assert code_of(call, req, metadata=md(tok["b"]), timeout=30) == grpc.StatusCode.NOT_FOUND
    listed = stub.ListRenders(render_pb2.ListRendersRequest(), metadata=md(tok["b"])).renders
    assert rid not in [r.render_id for r in listed]
    steal = render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key=face_a), audio=common_pb2.ObjectRef(key=audio_a)
    )
    req = render_pb2.CreateRenderRequest(renders=[steal])
    assert code_of(stub.CreateRender, req, metadata=md(tok["b"])) == grpc.StatusCode.PERMISSION_DENIED
    # the owner sees it; the same idempotency key of another tenant does not find it
    assert stub.GetRender(render_pb2.GetRenderRequest(render_id=rid), metadata=md(tok["a"])).render_id == rid
    events = list(stub.WatchRender(render_pb2.WatchRenderRequest(render_id=rid), metadata=md(tok["a"])))
    assert events[-1].render.state == render_pb2.RENDER_STATE_SUCCEEDED
    out = stub.GetRender(render_pb2.GetRenderRequest(render_id=rid), metadata=md(tok["a"])).output.key
    # its own output is referencable by its owner only
    reuse = render_pb2.RenderSpec(face=common_pb2.ObjectRef(key=face_a), audio=common_pb2.ObjectRef(key=out))
    if out.startswith("renders/") and store.exists(out):
        stub.CreateRender(render_pb2.CreateRenderRequest(renders=[reuse]), metadata=md(tok["a"]))
    assert code_of(
        stub.CreateRender, render_pb2.CreateRenderRequest(renders=[reuse]), metadata=md(tok["b"])
    ) in (grpc.StatusCode.PERMISSION_DENIED,)
    admin = stub.ListRenders(render_pb2.ListRendersRequest(), metadata=md(tok["admin"])).renders
    assert rid in [r.render_id for r in admin]


def test_unauthenticated_permission_denied_and_quotas(tenants):
    store, stub, tok = tenants
    get = render_pb2.GetRenderRequest(render_id="abc")
    assert code_of(stub.GetRender, get) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(stub.GetRender, get, metadata=md("lihq_wrongwrongwrongwrongwrong")) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    spec = render_pb2.RenderSpec(face=common_pb2.ObjectRef(key="tenants/acme/x.png"), text="hi")
    create = render_pb2.CreateRenderRequest(renders=[spec])
    assert code_of(stub.CreateRender, create, metadata=md(tok["ro"])) == grpc.StatusCode.PERMISSION_DENIED
    assert stub.ListRenders(render_pb2.ListRendersRequest(), metadata=md(tok["ro"])) is not None
    three = render_pb2.CreateRenderRequest(renders=[spec, spec, spec])
    assert code_of(stub.CreateRender, three, metadata=md(tok["a"])) == grpc.StatusCode.RESOURCE_EXHAUSTED
    big = [render_pb2.UploadInputRequest(filename="x.bin", data=b"x" * 20_000)]
    assert code_of(stub.UploadInput, iter(big), metadata=md(tok["a"])) == grpc.StatusCode.RESOURCE_EXHAUSTED
    foreign = render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key="tenants/acme/x.png", bucket="other-bucket"), text="hi"
    )
    assert (
        code_of(stub.CreateRender, render_pb2.CreateRenderRequest(renders=[foreign]), metadata=md(tok["a"]))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_sha256_of_a_reference_is_checked_at_create(tenants):
    store, stub, tok = tenants
    face = upload(stub, tok["a"], b"another face")
    audio = upload(stub, tok["a"], b"another audio", "x.wav")
    for sha, want in (("0" * 64, "does not match"), ("xyz", "not 64 hex digits")):
        spec = render_pb2.RenderSpec(
            face=common_pb2.ObjectRef(key=face, sha256=sha), audio=common_pb2.ObjectRef(key=audio)
        )
        with pytest.raises(grpc.RpcError) as ei:
            stub.CreateRender(render_pb2.CreateRenderRequest(renders=[spec]), metadata=md(tok["a"]))
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and want in ei.value.details()
        assert ei.value.details().startswith("face:")
    good = render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key=face, sha256=hashlib.sha256(b"another face").hexdigest()),
        audio=common_pb2.ObjectRef(key=audio),
    )
    stub.CreateRender(render_pb2.CreateRenderRequest(renders=[good]), metadata=md(tok["a"]))


def test_a_corrupt_record_fails_only_its_own_calls(tenants):
    from orchestrator.spec import RenderSpec
    from orchestrator.state import RenderRecord, RenderStore

    store, stub, tok = tenants
    renders = RenderStore(store)
    good = RenderRecord("c0ffee0000000001", RenderSpec(face_key="f", text="hi"), tenant="acme")
    bad = RenderRecord("c0ffee0000000002", RenderSpec(face_key="f", text="hi"), tenant="acme")
    renders.save(good)
    renders.save(bad)
    store.put_bytes(renders.key(bad.render_id), b"\x00\x00\x00 ftypisom: an mp4, not a record")
    with pytest.raises(grpc.RpcError) as ei:
        stub.GetRender(render_pb2.GetRenderRequest(render_id=bad.render_id), metadata=md(tok["a"]))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "unreadable" in ei.value.details()
    for who in ("a", "admin"):  # ListRenders skips it and lists the rest
        ids = [
            x.render_id
            for x in stub.ListRenders(render_pb2.ListRendersRequest(), metadata=md(tok[who])).renders
        ]
        assert good.render_id in ids and bad.render_id not in ids
    got = stub.GetRender(render_pb2.GetRenderRequest(render_id=good.render_id), metadata=md(tok["a"]))
    assert got.render_id == good.render_id


# -- the internal stage credential --------------------------------------------------------------------
class Ctx:
    def __init__(self, md):
        self.md = md

    def invocation_metadata(self):
        return self.md


def test_check_internal_fails_closed():
    on = {"LIHQ_AUTH": "on", "LIHQ_INTERNAL_TOKEN": "s3cr3t"}
    check_internal(None, on)  # in-process: trusted
    check_internal(Ctx([(INTERNAL_HEADER, "s3cr3t")]), on)
    for md_ in ([], [(INTERNAL_HEADER, "wrong")], [("authorization", "Bearer s3cr3t")]):
        with pytest.raises(Unauthenticated, match="stage services are internal"):
            check_internal(Ctx(md_), on)
    with pytest.raises(Unauthenticated, match="no LIHQ_INTERNAL_TOKEN"):
        check_internal(Ctx([(INTERNAL_HEADER, "x")]), {"LIHQ_AUTH": "on"})
    check_internal(Ctx([]), {"LIHQ_AUTH": "off"})
    assert metadata_of(Ctx([("A", "b"), ("x-bin", b"\x00")])) == {"a": "b"}


def test_stage_rpcs_need_the_internal_credential_over_grpc(tmp_path, monkeypatch):
    from services.media.servicer import MediaServicer

    monkeypatch.setenv("LIHQ_AUTH", "on")
    monkeypatch.setenv("LIHQ_INTERNAL_TOKEN", "internal-s3cret")
    store = FileStore(tmp_path / "store", "lihq")
    store.put_bytes("renders/x/output.mp4", b"precious")
    svc = MediaServicer(store)
    with plain_server(svc, [media_pb2.DESCRIPTOR.services_by_name["MediaService"]]) as ch:
        stub = media_pb2_grpc.MediaServiceStub(ch)
        req = media_pb2.EncodeRequest(
            packs=[common_pb2.ObjectRef(key="renders/x/output.mp4")], output_key="renders/x/output.mp4"
        )
        for meta in ((), md("anything"), ((INTERNAL_HEADER, "guess"),)):
            assert code_of(stub.Encode, req, metadata=meta, timeout=30) == grpc.StatusCode.UNAUTHENTICATED
        assert store.get_bytes("renders/x/output.mp4") == b"precious"
        # with the credential the call reaches the stage (and fails on its input, not on auth)
        code = code_of(stub.Encode, req, metadata=((INTERNAL_HEADER, "internal-s3cret"),), timeout=30)
        assert code != grpc.StatusCode.UNAUTHENTICATED


def test_another_services_rpc_is_unimplemented_not_a_traceback():
    from services.media.servicer import MediaServicer

    svc = MediaServicer.__new__(MediaServicer)
    handler = svc.CreateRender  # what Serve's proxy reaches with a wrong `application` metadata
    assert handler.__name__ == "CreateRender"
    with pytest.raises(AttributeError):
        svc.NoSuchRpc  # noqa: B018
    with pytest.raises(AttributeError):
        svc.__nothing__  # noqa: B018


@pytest.mark.parametrize(
    "requested, rid, ok",
    [
        ("", "", True),  # content-addressed default
        ("renders/r1/output.mp4", "r1", True),
        ("renders/r1/output.mp4", "", False),  # no render: no caller-chosen key
        ("renders/r2/output.mp4", "r1", False),  # another render's output
        ("renders/r1/render.json", "r1", False),  # the record
        ("renders/r1/tasks/000000001.json", "r1", False),  # the task log
        ("inputs/" + "a" * 64 + ".png", "r1", False),
        ("tenants/victim/inputs/x.png", "r1", False),
        ("cache/media/abc/crop.lfp", "r1", False),
        ("renders/../x", "r1", False),
        ("renders/_idempotency/x.json", "_idempotency", False),
    ],
)
def test_stages_write_only_content_addressed_keys_or_under_the_render(requested, rid, ok):
    from lihq.grpc.refs import render_output_key

    if ok:
        assert render_output_key(requested, rid, "cache/media/d/output.mp4") == (
            requested or "cache/media/d/output.mp4"
        )
    else:
        with pytest.raises(InvalidInput, match="output_key"):
            render_output_key(requested, rid, "cache/media/d/output.mp4")


def test_tokens_from_a_kubernetes_secret_env_var(tmp_path):
    reg = auth.Registry()
    token, _ = reg.add("acme")
    env = {"LIHQ_TOKENS_JSON": reg.to_json().decode(), "LIHQ_HOME": str(tmp_path)}
    a = auth.Authenticator(auth.default_tokens(env), enabled=True)
    assert a.authenticate({"authorization": f"Bearer {token}"}).tenant == "acme"
    with pytest.raises(InvalidInput, match="LIHQ_TOKENS_JSON"):
        auth.default_tokens({"LIHQ_TOKENS_JSON": "not json"})


def test_list_pages_hold_only_the_callers_renders_and_chain_through_all_of_them(tenants):
    store, stub, tok = tenants
    mine: list[str] = []
    theirs: list[str] = []
    for i in range(3):
        for who in ("b", "a"):  # interleaved with another tenant's renders in the store's index
            face = upload(stub, tok[who], f"face {who} {i}".encode())
            audio = upload(stub, tok[who], f"audio {who} {i}".encode(), "s.wav")
            spec = render_pb2.RenderSpec(
                face=common_pb2.ObjectRef(key=face), audio=common_pb2.ObjectRef(key=audio)
            )
            [r] = stub.CreateRender(
                render_pb2.CreateRenderRequest(renders=[spec]), metadata=md(tok[who])
            ).renders
            (mine if who == "a" else theirs).append(r.render_id)
    seen, token = [], ""
    while True:
        page = stub.ListRenders(
            render_pb2.ListRendersRequest(page_size=2, page_token=token), metadata=md(tok["a"])
        )
        assert len(page.renders) <= 2
        assert not {r.render_id for r in page.renders} & set(theirs)
        seen += [r.render_id for r in page.renders]
        token = page.next_page_token
        if not token:
            break
    assert set(mine) <= set(seen) and len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"x0": 1}',
        b'{"x0":"a","y0":0,"size":1,"photo_w":1,"photo_h":1,"face":[0,0,1,1]}',
    ],
)
def test_a_corrupt_crop_transform_is_invalid_argument_not_internal(data):
    from services.media.face import CropTransform

    with pytest.raises(InvalidInput, match="transform"):
        CropTransform.from_json(data)
