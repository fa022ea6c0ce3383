"""Shared fixtures.

- `s3_server` (session): a real S3 server on loopback (`rclone serve s3`); `.endpoint`
  ("127.0.0.1:PORT"), `.access_key`, `.secret_key`, `.s3config()` → S3Config, `.url`.
- `s3_store`: an S3Store on a fresh bucket of that server; `fs_store`: a FileStore in tmp_path.
- `store_factory`: parametrized over both ("fs", "s3"); `factory(prefix="")` opens a store on one
  bucket per test, so stores with different prefixes share a bucket. `store` = `store_factory()`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Unit tests host servicers in-process without credentials; authentication (API tokens, the internal
# stage credential) is exercised where it matters: tests/security and tests/integration start `lihq serve`
# with LIHQ_AUTH=on, and tests/lihq/test_auth.py turns it on explicitly.
os.environ.setdefault("LIHQ_AUTH", "off")

from lihq.storage import FileStore, ObjectStore, S3Store  # noqa: E402
from tests.s3server import S3Server  # noqa: E402  (the repo root is on sys.path: pytest pythonpath)

StoreFactory = Callable[..., ObjectStore]


def unique_bucket() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server.start(tmp_path_factory.mktemp("s3server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_server: S3Server) -> Iterator[S3Store]:
    if not s3_server.running:  # a test stopped it: bring it back for the next one
        s3_server.restart()
    store = S3Store(s3_server.s3config(), unique_bucket())
    yield store
    store.close()


@pytest.fixture
def fs_store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store", "lihq-test")


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.integration)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    bucket = unique_bucket()
    if request.param == "fs":
        return lambda prefix="": FileStore(tmp_path / "store", bucket, prefix)
    server: S3Server = request.getfixturevalue("s3_server")
    if not server.running:
        server.restart()
    return lambda prefix="": S3Store(server.s3config(), bucket, prefix)


@pytest.fixture
def store(store_factory: StoreFactory) -> ObjectStore:
    return store_factory()
