"""RenderService.UploadInput: a client stream of file chunks -> `inputs/<sha256>.<ext>` in the store.

Clients that have no store credentials (a laptop talking to a cluster's gRPC proxy) upload their face,
audio, reference video or background this way and put the returned key in a RenderSpec. The stream is
spooled to a temporary file while it is hashed, so memory stays flat for any size; the object is
written only when the whole stream arrived and matched the digest the client announced (if any), and
content already in the store is never rewritten — `inputs/` keys are content-addressed and immutable.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from lihq.errors import InvalidInput, ResourceExhausted
from lihq.storage.base import ObjectInfo, ObjectStore, content_key

DEFAULT_MAX_BYTES = 2 * 1024**3
PREFIX = "inputs"
MAX_FILENAME = 255


def echo(value: str, limit: int = 100) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Uploaded:
    info: ObjectInfo
    sha256: str
    existed: bool


def max_upload_bytes(env: dict[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get("LIHQ_MAX_UPLOAD_BYTES", "")
    if not raw:
        return DEFAULT_MAX_BYTES
    if not raw.isdigit() or int(raw) <= 0:
        raise InvalidInput(f"LIHQ_MAX_UPLOAD_BYTES={raw!r}: expected a positive number of bytes")
    return int(raw)


def extension_of(filename: str) -> str:
    """The key's extension: the file name's last suffix, lower-cased ('' when there is none)."""
    if not filename:
        raise InvalidInput("upload: the first message must name the file (filename), e.g. 'face.png'")
    if len(filename) > MAX_FILENAME:
        raise InvalidInput(f"upload: the file name is longer than {MAX_FILENAME} characters")
    return PurePosixPath(filename.replace("\\", "/")).suffix.lstrip(".").lower()


async def receive(
    store: ObjectStore, messages: AsyncIterator, max_bytes: int | None = None, prefix: str = PREFIX
) -> Uploaded:
    """Consume an UploadInputRequest stream; store it content-addressed under `prefix` (inputs/, or the
    tenant's tenants/<t>/inputs/). All or nothing: the stream must announce the file's sha256 (the
    client sends it last, after the bytes), so a stream cut short, which cannot match it, stores nothing."""
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    digest, size, filename, expected = hashlib.sha256(), 0, None, ""
    with tempfile.NamedTemporaryFile(prefix="lihq-upload-", delete=False) as spool:
        path = spool.name
    try:
        with open(path, "wb") as out:
            async for msg in messages:
                if filename is None:
                    filename = msg.filename
                    ext = extension_of(filename)
                    content_key(prefix, "0" * 64, ext)  # a bad extension fails before any byte is spooled
                if msg.sha256:
                    expected = msg.sha256.lower()[:80]
                if msg.data:
                    size += len(msg.data)
                    if size > limit:
                        raise ResourceExhausted(
                            f"upload {echo(filename)} is over the server's limit of {limit} bytes "
                            "(LIHQ_QUOTA_UPLOAD_BYTES / LIHQ_MAX_UPLOAD_BYTES); put large files in the "
                            "store directly"
                        )
                    digest.update(msg.data)
                    out.write(msg.data)
        if filename is None:
            raise InvalidInput("upload: the stream was empty (send the file name and its bytes)")
        if size == 0:
            raise InvalidInput(f"upload {echo(filename)}: the file is empty")
        actual = digest.hexdigest()
        if not expected:
            raise InvalidInput(
                f"upload {echo(filename)}: the stream did not announce the file's sha256 (send it in the "
                "last message), so a cut-off transfer cannot be told from a whole one; nothing was stored"
            )
        if expected != actual:
            raise InvalidInput(
                f"upload {echo(filename)}: sha256 {actual} does not match the announced {echo(expected, 70)} "
                "(the file changed or was cut off in transit; upload it again)"
            )
        key = content_key(prefix, actual, ext)
        info, existed = await asyncio.to_thread(_store, store, key, path)
        return Uploaded(info, actual, existed)
    finally:
        os.unlink(path)


def _store(store: ObjectStore, key: str, path: str) -> tuple[ObjectInfo, bool]:
    if store.exists(key):
        return store.stat(key), True
    return store.put_file(key, path), False


def chunks(path: str | os.PathLike, chunk: int = CHUNK):
    """Client side: the request messages for one local file (kept for callers of this name; the client
    code lives in lihq/client.py)."""
    from lihq.client import upload_requests

    return upload_requests(path, chunk)
