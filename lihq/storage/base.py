"""The object-store interface every stage and the orchestrator use (docs/architecture.md §3, §5).

Keys are '/'-separated relative paths inside one bucket (and under the store's optional prefix).
Any key that comes from a user goes through `validate_key` first. Objects carry their sha256 (hex)
as metadata when we wrote them, so a content-addressed reference can be checked without a re-read.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lihq.errors import Internal, InvalidInput

MAX_KEY_LEN = 1024
_SEGMENT_OK = re.compile(r"^[A-Za-z0-9._=+@,\-]+$")
_EXT_OK = re.compile(r"^[a-z0-9]{1,10}$")
_BUCKET_OK = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CHUNK = 8 * 1024 * 1024  # streaming chunk and multipart part size
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ObjectInfo:
    """What `stat`/`put*`/`list` return. `sha256` is None when the object was not written by us."""

    key: str
    size: int
    sha256: str | None = None
    content_type: str | None = None


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise InvalidInput.

    Rejects: empty, absolute ('/x'), backslashes, '.'/'..' segments, empty segments ('a//b', trailing
    '/'), control or unusual characters, and keys longer than 1024 bytes. This is what keeps a
    user-supplied key from escaping the configured prefix or the filesystem store's root.
    """
    if not isinstance(key, str) or not key:
        raise InvalidInput("object key is empty")
    if len(key.encode("utf-8")) > MAX_KEY_LEN:
        raise InvalidInput(f"object key is longer than {MAX_KEY_LEN} bytes")
    if key.startswith("/") or "\\" in key:
        raise InvalidInput(f"object key {key!r} must be a relative path with '/' separators")
    for seg in key.split("/"):
        if seg in ("", ".", ".."):
            raise InvalidInput(f"object key {key!r} has an empty, '.' or '..' segment")
        if not _SEGMENT_OK.match(seg):
            raise InvalidInput(
                f"object key {key!r}: segment {seg!r} may only use letters, digits and . _ = + @ , -"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: '' or a key-like string that may end with '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix.rstrip("/") or "x/")
    return prefix


def validate_bucket(bucket: str) -> str:
    """Return `bucket` if it is a valid S3 bucket name, else raise InvalidInput.

    3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or
    digit, no '..'. Both stores enforce it, so a configuration that works on one works on the other
    (and the filesystem store's bucket is always one safe directory name).
    """
    if not isinstance(bucket, str) or not _BUCKET_OK.match(bucket) or ".." in bucket:
        raise InvalidInput(
            f"bucket name {bucket!r} is not valid: use 3-63 lowercase letters, digits, '.' or '-' "
            "(starting and ending with a letter or digit)"
        )
    return bucket


def normalize_prefix(prefix: str) -> str:
    """A store's key prefix without surrounding '/'; '' or a valid key (raises InvalidInput)."""
    prefix = prefix.strip("/")
    return validate_key(prefix) if prefix else ""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def copy_and_hash(src: BinaryIO, dst: BinaryIO, length: int = -1, chunk: int = CHUNK) -> tuple[int, str]:
    """Copy `length` bytes (or everything, when -1) from `src` to `dst`; return (size, sha256 hex).

    Raises InvalidInput when `src` ends before `length` bytes. Never reads past `length`.
    """
    h = hashlib.sha256()
    size = 0
    while length < 0 or size < length:
        want = chunk if length < 0 else min(chunk, length - size)
        block = src.read(want)
        if not block:
            break
        h.update(block)
        dst.write(block)
        size += len(block)
    if 0 <= length != size:
        raise InvalidInput(f"stream ended after {size} of the {length} bytes announced")
    return size, h.hexdigest()


def verify_digest(key: str, recorded: str | None, actual: str) -> None:
    """Raise Internal when the sha256 recorded at write time is known and differs from `actual`."""
    if recorded is not None and recorded != actual:
        raise Internal(
            f"object {key!r} is corrupt: its bytes hash to sha256 {actual}, but {recorded} was recorded "
            "when it was written"
        )


def atomic_download(
    path: str | Path, fill: Callable[[BinaryIO], tuple[int, str]], key: str, recorded: str | None
) -> tuple[int, str]:
    """Write a downloaded object to `path` through a temp file in its directory; verify, then rename.

    Returns (size, sha256). On any error `path` is left untouched.
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create the directory of {str(dest)!r}: {exc.strerror}") from exc
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
    try:
        with open(tmp, "xb") as out:
            size, digest = fill(out)
        verify_digest(key, recorded, digest)
        os.replace(tmp, dest)
    except OSError as exc:
        raise InvalidInput(f"cannot write {str(dest)!r}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return size, digest


def content_key(prefix: str, digest: str, ext: str = "") -> str:
    """`<prefix>/<sha256>[.<ext>]` — the content-addressed key layout of `inputs/` (docs/architecture.md §5)."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InvalidInput(f"not a sha256 hex digest: {digest!r}")
    ext = ext.lower().lstrip(".")
    if ext and not _EXT_OK.match(ext):
        raise InvalidInput(f"file extension {ext!r} is not a short alphanumeric extension")
    key = f"{prefix.strip('/')}/{digest}" + (f".{ext}" if ext else "")
    return validate_key(key)


class ObjectStore(ABC):
    """One bucket (plus optional key prefix) of objects.

    Errors: a missing key raises `NotFound`; refused credentials `PermissionDenied`; an unreachable
    server `Unavailable` after bounded retries; a bad key `InvalidInput`.
    Writes are atomic from a reader's view: an object is either absent or complete.
    """

    bucket: str
    # Whether independent calls gain from running at once (threads): a network store's round trips
    # overlap; a local disk's calls are CPU in this process, where threads only contend for the GIL.
    concurrent_calls_help: bool = True

    # -- writes -------------------------------------------------------------------------------
    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo: ...

    @abstractmethod
    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> ObjectInfo:
        """Upload a local file, streaming (multipart on S3 for large files)."""

    @abstractmethod
    def put_stream(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str | None = None
    ) -> ObjectInfo:
        """Upload from a readable binary stream of known or unknown (-1) length."""

    # -- reads --------------------------------------------------------------------------------
    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def get_file(self, key: str, path: str | Path) -> ObjectInfo:
        """Download to a local path (written to a temp file then renamed)."""

    @abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream an object's bytes without holding it all in memory."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool:
        from lihq.errors import NotFound

        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """All objects whose key starts with `prefix` (recursive), in lexicographic key order.

        `prefix` is a plain string prefix ('a/b' matches 'a/b/c' and 'a/bc'). Listed infos carry key
        and size only (`sha256`/`content_type` None, as S3 listings have no user metadata): call
        `stat` for those.
        """

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        """At most `limit` objects of `list(prefix)` whose key sorts after `start_after` (one page of a
        listing; the next page starts after the last key returned). Stores override this to avoid
        walking the whole listing (S3: one ListObjectsV2 call with StartAfter)."""
        out: list[ObjectInfo] = []
        for info in self.list(prefix):
            if info.key > start_after:
                out.append(info)
                if len(out) >= limit:
                    break
        return out

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing key is not an error (S3 semantics)."""

    def put_marker(self, key: str) -> ObjectInfo:
        """Write an empty object (an index entry): as durable as `put_bytes(key, b"")`; a store may do it
        with fewer operations (FileStore: one file create + fsync)."""
        return self.put_bytes(key, b"", DEFAULT_CONTENT_TYPE)

    # -- content addressing ---------------------------------------------------------------------
    def put_content_addressed(self, prefix: str, data: bytes, ext: str = "") -> ObjectInfo:
        """Store bytes under `<prefix>/<sha256>.<ext>`; if that object already exists, write nothing."""
        key = content_key(prefix, sha256_bytes(data), ext)
        if self.exists(key):
            return self.stat(key)
        return self.put_bytes(key, data)

    def put_file_content_addressed(self, prefix: str, path: str | Path, ext: str = "") -> ObjectInfo:
        key = content_key(prefix, sha256_file(path), ext)
        if self.exists(key):
            return self.stat(key)
        return self.put_file(key, path)

    def describe(self) -> str:
        """Human-readable location, e.g. 's3://lihq@127.0.0.1:9000' or 'file:///home/u/.cache/lihq/store'."""
        return f"{type(self).__name__}({self.bucket})"
