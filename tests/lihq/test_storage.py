"""Object stores: one behaviour suite run against FileStore and S3Store (a real `rclone serve s3`),
then what is specific to each (on-disk layout and root confinement; S3 error classification, retries,
refused credentials, a server that is gone)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, ServerError

from lihq.config import S3Config, StoreConfig
from lihq.errors import (
    FailedPrecondition,
    Internal,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from lihq.storage import FileStore, ObjectStore, S3Store, content_key, open_store, validate_key
from lihq.storage.base import CHUNK, sha256_bytes
from lihq.storage.s3 import classify, part_size_for
from tests.s3server import S3Server, free_port

MIB = 1024 * 1024
BAD_KEYS = ["", "../x", "/abs", "a/../b", "a//b", "a\\b", "a/", "./x", "a/./b", "..", "x y", "a\nb"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class OneWayStream(io.RawIOBase):
    """A non-seekable stream (like a pipe or a socket) that hands out data in small reads."""

    def __init__(self, data: bytes, step: int = 1 << 20, fail_at: int | None = None) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step
        self._fail_at = fail_at

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_at is not None and self._pos >= self._fail_at:
            raise RuntimeError("producer died")
        n = self._step if size is None or size < 0 else min(size, self._step)
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(out)
        return out


def keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


# == the behaviour suite: every test runs against both stores =====================================
def test_bytes_round_trip_records_sha256(store: ObjectStore) -> None:
    data = b"hello object store"
    info = store.put_bytes("renders/r1/render.json", data, "application/json")
    assert (info.key, info.size, info.sha256) == ("renders/r1/render.json", len(data), sha(data))
    assert store.get_bytes("renders/r1/render.json") == data
    st = store.stat("renders/r1/render.json")
    assert (st.key, st.size, st.sha256, st.content_type) == (
        info.key,
        len(data),
        sha(data),
        "application/json",
    )
    assert store.stat("renders/r1/render.json").sha256 == sha(data)


def test_default_content_type_and_empty_object(store: ObjectStore) -> None:
    info = store.put_bytes("empty", b"")
    assert (info.size, info.sha256, info.content_type) == (0, sha(b""), "application/octet-stream")
    assert store.get_bytes("empty") == b""
    assert store.stat("empty").size == 0
    assert list(store.iter_chunks("empty")) == []


def test_file_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    info = store.put_file("inputs/clip.wav", src, "audio/wav")
    assert (info.size, info.sha256, info.content_type) == (len(data), sha(data), "audio/wav")
    dest = tmp_path / "new" / "dir" / "out.bin"
    got = store.get_file("inputs/clip.wav", dest)
    assert dest.read_bytes() == data
    assert (got.key, got.size, got.sha256) == ("inputs/clip.wav", len(data), sha(data))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out.bin"]  # no temp file left


def test_iter_chunks_streams_in_bounded_chunks(store: ObjectStore) -> None:
    data = os.urandom(100_000)
    store.put_bytes("k", data)
    chunks = list(store.iter_chunks("k", chunk_size=16_384))
    assert b"".join(chunks) == data
    assert len(chunks) >= 7 and all(len(c) <= 16_384 for c in chunks)


def test_overwrite_replaces_bytes_and_sha(store: ObjectStore) -> None:
    store.put_bytes("k", b"first version")
    store.put_bytes("k", b"second")
    assert store.get_bytes("k") == b"second"
    assert store.stat("k").sha256 == sha(b"second")
    assert keys(store) == ["k"]


def test_large_object_through_file_and_unknown_length_stream(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(20 * MIB + 12_345)  # three parts of 8 MiB on S3
    digest = sha(data)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    assert store.put_file("big/file", src).sha256 == digest
    info = store.put_stream("big/pipe", OneWayStream(data))  # non-seekable, length unknown
    assert (info.size, info.sha256) == (len(data), digest)
    with open(src, "rb") as seekable:
        assert store.put_stream("big/seekable", seekable).sha256 == digest
    for key in ("big/file", "big/pipe", "big/seekable"):
        assert store.stat(key).sha256 == digest
        out = tmp_path / f"{key.replace('/', '_')}.out"
        assert store.get_file(key, out).sha256 == digest
        assert sha(out.read_bytes()) == digest
    assert sha(store.get_bytes("big/pipe")) == digest


def test_put_stream_with_length_reads_only_that_much(store: ObjectStore) -> None:
    stream = io.BytesIO(b"0123456789")
    stream.seek(2)
    info = store.put_stream("k", stream, length=5)
    assert store.get_bytes("k") == b"23456"
    assert info.sha256 == sha(b"23456")
    assert stream.read() == b"789"
    assert store.put_stream("p", OneWayStream(b"abcdef", step=2), length=3).size == 3
    assert store.get_bytes("p") == b"abc"


def test_short_or_failing_stream_leaves_no_object(store: ObjectStore) -> None:
    with pytest.raises(InvalidInput, match="ended after 4 of the 10 bytes"):
        store.put_stream("short", io.BytesIO(b"abcd"), length=10)
    with pytest.raises(RuntimeError, match="producer died"):
        store.put_stream("dying", OneWayStream(os.urandom(3 * MIB), fail_at=2 * MIB))
    store.put_bytes("kept", b"old")
    with pytest.raises(RuntimeError):
        store.put_stream("kept", OneWayStream(b"new" * MIB, fail_at=MIB))
    assert keys(store) == ["kept"]
    assert store.get_bytes("kept") == b"old"
    assert not store.exists("short") and not store.exists("dying")


def test_list_is_recursive_lexicographic_and_by_string_prefix(store: ObjectStore) -> None:
    names = ["b", "a/b", "a-c", "a/a/x", "ab", "A", "a.x/y", "cache/wav2lip/d1/seg_000000.lfp"]
    for i, k in enumerate(names):
        store.put_bytes(k, b"x" * i)
    assert keys(store) == sorted(names)  # 'a-c' < 'a.x/y' < 'a/a/x': byte order, not tree order
    assert keys(store, "a/") == ["a/a/x", "a/b"]
    assert keys(store, "a") == ["a-c", "a.x/y", "a/a/x", "a/b", "ab"]
    assert keys(store, "a/b") == ["a/b"]
    assert keys(store, "cache/") == ["cache/wav2lip/d1/seg_000000.lfp"]
    assert keys(store, "nothing/") == []
    sizes = {i.key: i.size for i in store.list()}
    assert sizes == {k: i for i, k in enumerate(names)}


def test_prefix_is_prepended_and_stripped(store_factory) -> None:
    root = store_factory()
    tenant_a = store_factory("tenant-a")
    tenant_b = store_factory("/tenant-b/")
    tenant_a.put_bytes("renders/r1/render.json", b"{}")
    tenant_b.put_bytes("x", b"b")
    assert keys(tenant_a) == ["renders/r1/render.json"]
    assert keys(tenant_a, "renders/") == ["renders/r1/render.json"]
    assert keys(tenant_b) == ["x"]
    assert keys(root) == ["tenant-a/renders/r1/render.json", "tenant-b/x"]
    assert root.get_bytes("tenant-a/renders/r1/render.json") == b"{}"
    assert not tenant_b.exists("renders/r1/render.json")
    with pytest.raises(InvalidInput):
        store_factory("../escape")


def test_missing_key_is_not_found_everywhere(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("present", b"1")
    dest = tmp_path / "dl" / "missing.bin"
    for call in (
        lambda: store.get_bytes("inputs/missing.wav"),
        lambda: store.stat("inputs/missing.wav"),
        lambda: store.get_file("inputs/missing.wav", dest),
        lambda: list(store.iter_chunks("inputs/missing.wav")),
    ):
        with pytest.raises(NotFound, match="inputs/missing.wav"):
            call()
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []
    assert store.exists("present") and not store.exists("inputs/missing.wav")
    store.put_bytes("dir/child", b"2")
    with pytest.raises(NotFound):
        store.get_bytes("dir")  # a key prefix is not an object
    assert not store.exists("dir")


def test_uploading_a_missing_local_file_is_invalid_input(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="nope.wav"):
        store.put_file("k", tmp_path / "nope.wav")
    with pytest.raises(InvalidInput):
        store.put_file("k", tmp_path)  # a directory
    assert not store.exists("k")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put_bytes("a/b", b"1")
    store.put_bytes("a/c", b"2")
    store.delete("a/b")
    assert not store.exists("a/b")
    assert keys(store) == ["a/c"]
    store.delete("a/b")  # already gone
    store.delete("never/was")
    with pytest.raises(NotFound):
        store.get_bytes("a/b")


def test_content_addressed_put_writes_once(store: ObjectStore, tmp_path: Path, monkeypatch) -> None:
    data = b"RIFF....WAVE"
    first = store.put_content_addressed("inputs", data, "wav")
    assert first.key == f"inputs/{sha(data)}.wav" == content_key("inputs", sha(data), ".WAV")
    writes: list[str] = []
    monkeypatch.setattr(store, "put_bytes", lambda key, *a, **k: writes.append(key))
    monkeypatch.setattr(store, "put_file", lambda key, *a, **k: writes.append(key))
    again = store.put_content_addressed("inputs", data, "wav")
    src = tmp_path / "same.wav"
    src.write_bytes(data)
    from_file = store.put_file_content_addressed("inputs", src, "wav")
    assert writes == []
    assert again.key == from_file.key == first.key
    assert again.sha256 == from_file.sha256 == sha(data)
    monkeypatch.undo()
    other = store.put_content_addressed("inputs", b"other", "wav")
    assert other.key != first.key
    assert keys(store, "inputs/") == sorted([first.key, other.key])


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_bad_keys_are_rejected_before_any_io(store: ObjectStore, bad: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        validate_key(bad)
    for call in (
        lambda: store.put_bytes(bad, b"x"),
        lambda: store.put_stream(bad, io.BytesIO(b"x")),
        lambda: store.get_bytes(bad),
        lambda: store.stat(bad),
        lambda: store.exists(bad),
        lambda: store.delete(bad),
        lambda: list(store.iter_chunks(bad)),
        lambda: store.get_file(bad, tmp_path / "o"),
    ):
        with pytest.raises(InvalidInput):
            call()
    with pytest.raises(InvalidInput):
        list(store.list("../"))
    assert keys(store) == []


# == FileStore ===================================================================================
def test_fs_layout_and_sidecar_not_listed(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "root", "lihq", "tenant")
    store.put_bytes("renders/r1/output.mp4", b"mp4", "video/mp4")
    obj = tmp_path / "root" / "lihq" / "tenant" / "renders" / "r1" / "output.mp4"
    assert obj.read_bytes() == b"mp4"
    assert sorted(p.name for p in obj.parent.iterdir()) == ["output.mp4", "output.mp4#meta.json"]
    (obj.parent / "stray file").write_bytes(b"not a valid key")
    (obj.parent / ".#tmp-deadbeef").write_bytes(b"an interrupted write")
    assert keys(store) == ["renders/r1/output.mp4"]
    assert store.describe() == f"file://{tmp_path / 'root' / 'lihq' / 'tenant'}"


def test_fs_never_writes_outside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not touch")
    store = FileStore(root, "lihq")
    store.put_bytes("ok", b"1")
    (root / "lihq" / "link").symlink_to(outside, target_is_directory=True)
    for bad in [*BAD_KEYS, "link/secret", "link/new"]:
        with pytest.raises(InvalidInput):
            store.put_bytes(bad, b"pwned")
        with pytest.raises(InvalidInput):
            store.get_bytes(bad)
        with pytest.raises(InvalidInput):
            store.delete(bad)
    with pytest.raises(InvalidInput):
        list(store.list("link/"))
    assert keys(store) == ["ok"]  # the symlinked directory is not followed
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"do not touch"
    assert {p for p in tmp_path.rglob("*") if not p.is_relative_to(root)} == {outside, outside / "secret"}


def test_fs_links_below_the_root_are_checked_wherever_they_are_and_a_linked_root_works(
    tmp_path: Path,
) -> None:
    """The inside check lstat's the key's own components: a link at any depth (to a directory or to a
    file) that leads out is refused; one that stays inside is followed; the root itself may be a link."""
    real_root, outside = tmp_path / "real-root", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not touch")
    real_root.mkdir()
    (tmp_path / "root").symlink_to(real_root, target_is_directory=True)
    store = FileStore(tmp_path / "root", "lihq")
    store.put_bytes("a/b/ok", b"1")
    assert store.get_bytes("a/b/ok") == b"1"
    base = real_root / "lihq"
    (base / "a" / "deep").symlink_to(outside, target_is_directory=True)
    (base / "a" / "b" / "file").symlink_to(outside / "secret")
    (base / "a" / "inside").symlink_to(base / "a" / "b", target_is_directory=True)
    for bad in ("a/deep/secret", "a/deep/new/x", "a/b/file"):
        with pytest.raises(InvalidInput, match="outside"):
            store.get_bytes(bad)
        with pytest.raises(InvalidInput, match="outside"):
            store.put_bytes(bad, b"pwned")
    assert store.get_bytes("a/inside/ok") == b"1"
    assert (outside / "secret").read_bytes() == b"do not touch" and sorted(outside.iterdir()) == [
        outside / "secret"
    ]


def test_fs_key_and_key_below_it_conflict(fs_store: FileStore) -> None:
    fs_store.put_bytes("a", b"1")
    with pytest.raises(FailedPrecondition, match="a/b"):
        fs_store.put_bytes("a/b", b"2")
    fs_store.put_bytes("c/d", b"3")
    with pytest.raises(FailedPrecondition, match="'c'"):
        fs_store.put_bytes("c", b"4")
    with pytest.raises(NotFound):
        fs_store.get_bytes("c")  # a directory is not an object
    assert keys(fs_store) == ["a", "c/d"]


def test_fs_sidecar_of_a_replaced_file_is_not_trusted(fs_store: FileStore, tmp_path: Path) -> None:
    fs_store.put_bytes("k", b"ours")
    other = tmp_path / "other"
    other.write_bytes(b"theirs")
    os.replace(other, fs_store.base / "k")  # changed behind the store's back
    st = fs_store.stat("k")
    assert (st.size, st.sha256) == (6, None)
    assert fs_store.get_bytes("k") == b"theirs"


def test_fs_corruption_is_detected_on_read(fs_store: FileStore, tmp_path: Path) -> None:
    fs_store.put_bytes("k", b"good bytes")
    path = fs_store.base / "k"
    before = path.stat()
    with open(path, "r+b") as f:
        f.write(b"BAD")  # same size, same inode
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(Internal, match="corrupt"):
        fs_store.get_bytes("k")
    with pytest.raises(Internal, match="corrupt"):
        fs_store.get_file("k", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fs_rejects_bad_bucket(tmp_path: Path) -> None:
    for bucket in ["", "..", "a/b", "UPPER", "x"]:
        with pytest.raises(InvalidInput):
            FileStore(tmp_path, bucket)


# == S3Store =====================================================================================
@pytest.mark.integration
def test_s3_metadata_and_prefix_on_the_server(s3_server: S3Server) -> None:
    store = S3Store(s3_server.s3config(), "meta-check", "tenant")
    info = store.put_bytes("inputs/x.bin", b"payload")
    raw = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
    st = raw.stat_object("meta-check", "tenant/inputs/x.bin")
    assert st.metadata["x-amz-meta-sha256"] == info.sha256 == sha(b"payload")
    assert [o.object_name for o in raw.list_objects("meta-check", recursive=True)] == ["tenant/inputs/x.bin"]
    assert (
        Path(s3_server.data_dir) / "meta-check" / "tenant" / "inputs" / "x.bin"
    ).read_bytes() == b"payload"
    assert store.describe() == f"s3://meta-check/tenant on http://{s3_server.endpoint}"


@pytest.mark.integration
def test_s3_bucket_created_with_region_discovery(s3_server: S3Server) -> None:
    cfg = S3Config(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, region=None, retries=1)
    store = S3Store(cfg, "no-region-bucket")
    assert keys(store) == []  # bucket created on first use
    store.put_bytes("k", b"v")
    assert S3Store(cfg, "no-region-bucket").get_bytes("k") == b"v"


@pytest.mark.integration
def test_s3_missing_bucket_without_create_is_not_found(s3_server: S3Server) -> None:
    store = S3Store(s3_server.s3config(), "never-created", create_bucket=False)
    with pytest.raises(NotFound, match="bucket 'never-created' does not exist"):
        store.get_bytes("k")
    with pytest.raises(NotFound, match="bucket 'never-created' does not exist"):
        list(store.list())
    store.delete("k")  # nothing to delete is fine


def _some_calls(store: ObjectStore) -> list[Callable[[], object]]:
    return [
        lambda: store.put_bytes("k2", b"v"),
        lambda: store.get_bytes("k"),
        lambda: store.stat("k"),
        lambda: list(store.list()),
    ]


@pytest.mark.integration
@pytest.mark.parametrize("which", ["secret", "access"])
def test_s3_wrong_credentials_are_permission_denied(
    s3_server: S3Server, s3_store: S3Store, which: str
) -> None:
    s3_store.put_bytes("k", b"v")
    good = s3_server.s3config()
    bad = S3Config(
        good.endpoint,
        "someone-else-entirely" if which == "access" else good.access_key,
        "not-the-secret-0000" if which == "secret" else good.secret_key,
        region=good.region,
        retries=good.retries,
    )
    t0 = time.monotonic()
    for create in (True, False):
        store = S3Store(bad, s3_store.bucket, create_bucket=create)
        for call in _some_calls(store):
            with pytest.raises(PermissionDenied, match="LIHQ_S3_ACCESS_KEY / LIHQ_S3_SECRET_KEY"):
                call()
    assert time.monotonic() - t0 < 5, "a refusal is not retried"
    assert not s3_store.exists("k2")


@pytest.mark.integration
def test_s3_nothing_listening_is_unavailable_quickly() -> None:
    cfg = S3Config(
        f"127.0.0.1:{free_port()}", "lihqaccesskey", "lihqsecretkey", region="us-east-1", retries=2
    )
    store = S3Store(cfg, "any-bucket")
    for call in (
        lambda: store.put_bytes("k", b"v"),
        lambda: store.get_bytes("k"),
        lambda: store.stat("k"),
        lambda: list(store.list()),
        lambda: store.put_stream("k", OneWayStream(b"v" * 1000)),
    ):
        t0 = time.monotonic()
        with pytest.raises(Unavailable, match="failed 3 time") as info:
            call()
        assert time.monotonic() - t0 < 15
        assert "Connection refused" in str(info.value) or "NewConnectionError" in str(info.value)


@pytest.mark.integration
def test_s3_server_gone_then_back(tmp_path: Path) -> None:
    with S3Server.start(tmp_path / "srv") as server:
        store = S3Store(server.s3config(retries=2), "comes-and-goes")
        store.put_bytes("k", b"survives")
        server.stop()
        t0 = time.monotonic()
        with pytest.raises(Unavailable, match=server.endpoint):
            store.get_bytes("k")
        with pytest.raises(Unavailable):
            store.put_bytes("k2", b"x")
        assert time.monotonic() - t0 < 15
        server.restart()
        assert store.get_bytes("k") == b"survives"
        assert store.stat("k").size == 8  # (rclone keeps user metadata in memory only)
        store.put_bytes("k2", b"x")
        assert keys(store) == ["k", "k2"]


class _Answer503(http.server.BaseHTTPRequestHandler):
    """Every request: 503 SlowDown (XML) — an overloaded S3 server."""

    requests = 0

    def _reply(self) -> None:
        type(self).requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>slow down</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def overloaded_server() -> Iterator[str]:
    _Answer503.requests = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer503)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_s3_5xx_is_retried_a_bounded_number_of_times(overloaded_server: str) -> None:
    cfg = S3Config(overloaded_server, "lihqaccesskey", "lihqsecretkey", region="us-east-1", retries=2)
    store = S3Store(cfg, "busy", create_bucket=False)
    t0 = time.monotonic()
    with pytest.raises(Unavailable, match="SlowDown"):
        store.put_bytes("k", b"v")
    assert 3 <= _Answer503.requests <= 6  # 3 attempts, each retried once by urllib3
    _Answer503.requests = 0
    with pytest.raises(Unavailable, match="503"):
        store.stat("k")  # HEAD: no body, just the status
    assert 3 <= _Answer503.requests <= 6
    assert time.monotonic() - t0 < 15


@pytest.mark.integration
def test_s3_unresponsive_server_times_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # connections complete in the kernel; nobody ever answers
        cfg = S3Config(f"127.0.0.1:{sock.getsockname()[1]}", "lihqaccesskey", "lihqsecretkey", retries=1)
        store = S3Store(cfg, "hung", create_bucket=False, read_timeout_s=0.3)
        t0 = time.monotonic()
        with pytest.raises(Unavailable, match="(?i)timed? ?out"):
            store.stat("k")
        assert time.monotonic() - t0 < 10


class _DropsAfterFirstBlock:
    """Wraps a GET response whose connection dies after the first block."""

    def __init__(self, resp: urllib3.BaseHTTPResponse) -> None:
        self._resp = resp
        self.headers = resp.headers

    def stream(self, amt: int, decode_content: bool = True) -> Iterator[bytes]:
        for block in self._resp.stream(amt, decode_content=decode_content):
            yield block
            raise urllib3.exceptions.ProtocolError("Connection broken: simulated")

    def close(self) -> None:
        self._resp.close()

    def release_conn(self) -> None:
        self._resp.release_conn()


@pytest.mark.integration
def test_s3_dropped_download_resumes_with_a_range(s3_store: S3Store, monkeypatch) -> None:
    data = os.urandom(3 * MIB + 7)
    s3_store.put_bytes("k", data)
    real_get = s3_store._client.get_object
    calls: list[tuple[int, dict[str, str] | None]] = []

    def flaky_get(bucket: str, name: str, offset: int = 0, request_headers=None, **kw):
        calls.append((offset, request_headers))
        resp = real_get(bucket, name, offset=offset, request_headers=request_headers, **kw)
        return _DropsAfterFirstBlock(resp) if len(calls) == 1 else resp

    monkeypatch.setattr(s3_store._client, "get_object", flaky_get)
    assert b"".join(s3_store.iter_chunks("k", chunk_size=MIB)) == data
    assert [c[0] for c in calls] == [0, MIB]
    assert calls[1][1] is not None and "If-Match" in calls[1][1]
    calls.clear()
    assert s3_store.get_bytes("k") == data  # first block is everything: the drop comes after the end
    assert [c[0] for c in calls] == [0]


def test_classification_of_client_errors() -> None:
    refused = urllib3.exceptions.MaxRetryError(
        None, "/b/k", urllib3.exceptions.NewConnectionError(None, "Connection refused")
    )
    rclone_xml = (
        "<?xml version='1.0'?><Error><Code>{}</Code><Message>m</Message></Error>"  # served as text/xml
    )
    cases = {
        refused: ("transient", "MaxRetryError"),
        urllib3.exceptions.ProtocolError("Connection aborted"): ("transient", "ProtocolError"),
        ConnectionResetError(): ("transient", "ConnectionResetError"),
        InvalidResponseError(404, "text/xml", rclone_xml.format("NoSuchKey")): ("not_found", "NoSuchKey"),
        InvalidResponseError(404, "text/xml", rclone_xml.format("NoSuchBucket")): (
            "not_found",
            "NoSuchBucket",
        ),
        InvalidResponseError(403, "text/xml", rclone_xml.format("SignatureDoesNotMatch")): (
            "denied",
            "SignatureDoesNotMatch",
        ),
        InvalidResponseError(403, "text/xml", rclone_xml.format("InvalidAccessKeyId")): (
            "denied",
            "InvalidAccessKeyId",
        ),
        InvalidResponseError(409, "text/xml", rclone_xml.format("BucketAlreadyExists")): (
            "invalid",
            "BucketAlreadyExists",
        ),
        InvalidResponseError(503, "text/xml", rclone_xml.format("SlowDown")): ("transient", "SlowDown"),
        InvalidResponseError(403, "text/html", "<html>proxy says no</html>"): ("denied", "403"),
        InvalidResponseError(502, "text/html", "<html>bad gateway</html>"): ("transient", "502"),
        InvalidResponseError(400, "text/xml", rclone_xml.format("InvalidArgument")): (
            "invalid",
            "InvalidArgument",
        ),
        ServerError("server failed with HTTP status code 503", 503): ("transient", "503"),
    }
    for exc, (kind, code) in cases.items():
        got = classify(exc)
        assert (got.kind, got.code) == (kind, code), exc


def test_part_size_is_at_least_8_mib_and_fits_10000_parts() -> None:
    assert part_size_for(0) == part_size_for(20 * MIB) == CHUNK
    for size in (80 * 1024 * MIB, 5 * 1024 * 1024 * MIB):
        ps = part_size_for(size)
        assert ps % MIB == 0 and ps * 10_000 >= size


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch) -> None:
    fs = open_store(StoreConfig(bucket="lihq", prefix="p", root=tmp_path))
    assert isinstance(fs, FileStore) and fs.base == tmp_path / "lihq" / "p"
    s3cfg = S3Config("127.0.0.1:9", "a", "b", region="us-east-1")
    s3 = open_store(StoreConfig(bucket="lihq", s3=s3cfg))  # no I/O until first use
    assert isinstance(s3, S3Store) and s3.describe() == "s3://lihq on http://127.0.0.1:9"
    monkeypatch.setenv("LIHQ_STORE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("LIHQ_BUCKET", "from-env")
    monkeypatch.delenv("LIHQ_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("LIHQ_STORE_PREFIX", raising=False)
    env_store = open_store()
    assert isinstance(env_store, FileStore) and env_store.base == tmp_path / "env" / "from-env"
    assert sha256_bytes(b"") == sha(b"")
