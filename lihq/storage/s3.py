"""S3Store: objects on any S3-compatible server (MinIO, AWS, SeaweedFS, rclone ...) via `minio`.

Contracts (beyond `ObjectStore`):
- Every key lives under `prefix/` in the bucket; `list` strips the prefix again.
- The sha256 of what we wrote is sent as user metadata (`x-amz-meta-sha256`) and read back by `stat`,
  `get_bytes` and `get_file` (which verify it). The header must go out before the body, so a
  non-seekable `put_stream` is spooled to a temporary file first (in memory up to 8 MiB); a seekable
  one is hashed in a first pass and rewound. Either way every upload can be re-sent on a retry.
- Errors: NoSuchKey/NoSuchBucket → NotFound; refused credentials → PermissionDenied naming the
  LIHQ_S3_* variables; refused connections, timeouts, urllib3 transport errors and 5xx/SlowDown →
  retried `cfg.retries` times with capped exponential backoff, then Unavailable. urllib3 itself only
  retries one idempotent request once (minio never retries POST), with short timeouts, so a call
  against a server that is gone ends within seconds.
- Downloads that drop mid-stream resume with a ranged GET (If-Match the first ETag), bounded the same way.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import logging
import math
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from urllib3.util import Retry, Timeout

from lihq.config import S3Config
from lihq.errors import Internal, InvalidInput, LihqError, NotFound, PermissionDenied, Unavailable
from lihq.storage.base import (
    CHUNK,
    DEFAULT_CONTENT_TYPE,
    ObjectInfo,
    ObjectStore,
    atomic_download,
    copy_and_hash,
    normalize_prefix,
    sha256_bytes,
    sha256_file,
    validate_bucket,
    validate_key,
    validate_prefix,
    verify_digest,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SHA_META = "sha256"  # sent as the x-amz-meta-sha256 header
MAX_PARTS = 10_000  # S3's multipart limit
_MIB = 1024 * 1024
_BACKOFF_BASE_S = 0.2
_BACKOFF_MAX_S = 2.0
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_XML_CODE = re.compile(r"<Code>\s*([^<\s]+)\s*</Code>")
_STATUS_IN_TEXT = re.compile(r"Response code: (\d{3})")

_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "NoSuchUpload", "ResourceNotFound"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
        "InvalidToken",
        "ExpiredToken",
        "AccountProblem",
    }
)
# PreconditionFailed: the object changed between the first GET and a resuming ranged GET.
_TRANSIENT = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "ServerBusy", "PreconditionFailed"}
)
_BUCKET_TAKEN = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
# What a dead or flaky connection raises: urllib3 errors (after minio's own GET/PUT retries) and the
# socket errors that can escape while a response body streams.
_TRANSPORT = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
_CLIENT_ERRORS = (MinioException, *_TRANSPORT)


@dataclass(frozen=True)
class _Failure:
    """A client exception, classified: kind is not_found | denied | transient | invalid | other."""

    kind: str
    code: str
    detail: str


class S3Store(ObjectStore):
    """One bucket (and key prefix) on an S3 server. Thread-safe; the bucket is created on first use
    when `create_bucket` (otherwise a missing bucket is NotFound)."""

    def __init__(
        self,
        cfg: S3Config,
        bucket: str,
        prefix: str = "",
        create_bucket: bool = True,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self.bucket = validate_bucket(bucket)
        self.prefix = normalize_prefix(prefix)
        self._attempts = max(1, cfg.retries + 1)
        self._create_bucket = create_bucket
        self._bucket_ready = False
        self._lock = threading.Lock()
        self._http = _http_pool(connect_timeout_s, read_timeout_s)
        try:
            self._client = Minio(
                cfg.endpoint,
                access_key=cfg.access_key,
                secret_key=cfg.secret_key,
                secure=cfg.secure,
                region=cfg.region,
                http_client=self._http,
            )
        except ValueError as exc:
            raise InvalidInput(f"S3 endpoint {cfg.endpoint!r}: {exc}") from exc

    def describe(self) -> str:
        scheme = "https" if self.cfg.secure else "http"
        where = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return f"s3://{where} on {scheme}://{self.cfg.endpoint}"

    def close(self) -> None:
        """Drop pooled connections (the store stays usable; new connections are opened on demand)."""
        self._http.clear()

    # -- writes -------------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        return self._upload(
            key, lambda: contextlib.nullcontext(io.BytesIO(data)), len(data), sha256_bytes(data), content_type
        )

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> ObjectInfo:
        """Upload a local file (multipart in parts of >= 8 MiB when larger). It must not change meanwhile."""
        validate_key(key)
        size = _local_file_size(path)
        return self._upload(key, lambda: open(path, "rb"), size, sha256_file(path), content_type)

    def put_stream(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str | None = None
    ) -> ObjectInfo:
        """Upload `length` bytes (all, when -1) from the stream's current position."""
        validate_key(key)
        if _seekable(stream):
            start = stream.tell()
            size, digest = copy_and_hash(stream, _Discard(), length)

            def rewound() -> AbstractContextManager[BinaryIO]:
                stream.seek(start)
                return contextlib.nullcontext(stream)

            return self._upload(key, rewound, size, digest, content_type)
        with tempfile.SpooledTemporaryFile(max_size=CHUNK) as spool:
            size, digest = copy_and_hash(stream, spool, length)  # type: ignore[arg-type]

            def spooled() -> AbstractContextManager[BinaryIO]:
                spool.seek(0)
                return contextlib.nullcontext(spool)  # type: ignore[arg-type]

            return self._upload(key, spooled, size, digest, content_type)

    def _upload(
        self,
        key: str,
        open_body: Callable[[], AbstractContextManager[BinaryIO]],
        size: int,
        digest: str,
        content_type: str | None,
    ) -> ObjectInfo:
        """PUT (or multipart-upload) a re-openable body of known size with its sha256 as metadata."""
        name = self._name(key)
        ctype = content_type or DEFAULT_CONTENT_TYPE
        self._ready()

        def once() -> None:
            with open_body() as body:
                self._client.put_object(
                    self.bucket,
                    name,
                    body,
                    size,
                    content_type=ctype,
                    metadata={SHA_META: digest},
                    part_size=part_size_for(size),
                    num_parallel_uploads=1,  # parts in order: streaming servers (rclone) need no buffering
                )

        self._call("put", key, once)
        return ObjectInfo(key, size, digest, ctype)

    # -- reads --------------------------------------------------------------------------------
    def stat(self, key: str) -> ObjectInfo:
        name = self._name(key)
        self._ready()
        obj = self._call("stat", key, lambda: self._client.stat_object(self.bucket, name))
        return ObjectInfo(key, obj.size or 0, _recorded_sha(obj.metadata), obj.content_type)

    def get_bytes(self, key: str) -> bytes:
        reader = _Reader(self, key, CHUNK)
        data = b"".join(reader)
        verify_digest(key, reader.recorded, sha256_bytes(data))
        return data

    def get_file(self, key: str, path: str | Path) -> ObjectInfo:
        """Download to `path` (parents created) via a temp file + rename; checks the recorded sha256."""
        reader = _Reader(self, key, CHUNK)
        validate_key(key)

        def fill(out: BinaryIO) -> tuple[int, str]:
            size, digest = copy_and_hash(_IterReader(iter(reader)), out)
            verify_digest(key, reader.recorded, digest)
            return size, digest

        size, digest = atomic_download(path, fill, key, None)
        return ObjectInfo(key, size, digest, reader.content_type)

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream the object (no sha256 check: the caller sees the bytes before the end)."""
        yield from _Reader(self, key, chunk_size)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        yield from self._objects(prefix, "")

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        """One ListObjectsV2 request (StartAfter) for a page of up to 1000 keys."""
        validate_prefix(prefix)
        validate_prefix(start_after)  # any key-like string: the page starts after it
        return list(itertools.islice(self._objects(prefix, start_after), max(0, limit)))

    def _objects(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        """Objects under `prefix` in key order, after `start_after`; a failed listing is retried from
        the last key seen (bounded, like every call)."""
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        after = (f"{self.prefix}/{start_after}" if self.prefix else start_after) if start_after else None
        self._ready()
        failures = 0
        while True:
            try:
                for obj in self._client.list_objects(
                    self.bucket, prefix=full or None, recursive=True, start_after=after
                ):
                    if obj.is_dir or obj.object_name is None:
                        continue
                    after = obj.object_name
                    key = obj.object_name[strip:]
                    if _is_key(key):
                        yield ObjectInfo(key, obj.size or 0)
                return
            except _CLIENT_ERRORS as exc:
                failures = self._retry_or_raise(exc, "list", prefix or None, failures)

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._call("delete", key, lambda: self._client.remove_object(self.bucket, name))
        except NotFound:
            return  # no bucket: no object either

    # -- plumbing -----------------------------------------------------------------------------
    def _name(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _ready(self) -> None:
        """Create the bucket once, on first use (so a store can be built while the server is down)."""
        if self._bucket_ready or not self._create_bucket:
            return
        with self._lock:
            if not self._bucket_ready:
                self._call("create bucket", None, self._ensure_bucket)
                self._bucket_ready = True

    def _ensure_bucket(self) -> None:
        try:
            if self._client.bucket_exists(self.bucket):
                return
        except MinioException as exc:  # without a region, minio asks for the bucket's location first
            if classify(exc).kind != "not_found":
                raise
        try:
            self._client.make_bucket(self.bucket, location=self.cfg.region)
        except MinioException as exc:
            if classify(exc).code not in _BUCKET_TAKEN:  # created meanwhile by someone else
                raise

    def _get(self, name: str, offset: int, etag: str | None) -> urllib3.BaseHTTPResponse:
        headers = {"If-Match": etag} if offset and etag else None
        return self._client.get_object(self.bucket, name, offset=offset, request_headers=headers)

    def _call(self, op: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run one client operation: transient failures are retried, everything ends typed."""
        failures = 0
        while True:
            try:
                return fn()
            except _CLIENT_ERRORS as exc:
                failures = self._retry_or_raise(exc, op, key, failures)

    def _retry_or_raise(self, exc: BaseException, op: str, key: str | None, failures: int) -> int:
        """Sleep before the next attempt and return the failure count, or raise the typed error."""
        failure = classify(exc)
        failures += 1
        if failure.kind != "transient" or failures >= self._attempts:
            raise self._error(failure, op, key, failures) from exc
        delay = min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        log.warning(
            "s3 %s %s failed (attempt %d/%d: %s); retrying in %.2fs",
            op,
            self._where(key),
            failures,
            self._attempts,
            failure.detail,
            delay,
        )
        time.sleep(delay)
        return failures

    def _where(self, key: str | None) -> str:
        return f"object {key!r} in {self.describe()}" if key else self.describe()

    def _error(self, failure: _Failure, op: str, key: str | None, attempts: int) -> LihqError:
        where = self._where(key)
        if failure.kind == "not_found":
            if failure.code == "NoSuchBucket":
                return NotFound(
                    f"bucket {self.bucket!r} does not exist on {self.cfg.endpoint} ({op} {where})"
                )
            return NotFound(f"{where} not found")
        if failure.kind == "denied":
            return PermissionDenied(
                f"S3 server {self.cfg.endpoint} refused to {op} {where} ({failure.code}): check "
                f"LIHQ_S3_ACCESS_KEY / LIHQ_S3_SECRET_KEY and that this key may use bucket {self.bucket!r}"
            )
        if failure.kind == "transient":
            return Unavailable(
                f"S3 server {self.cfg.endpoint} unavailable: {op} {where} failed {attempts} time(s); "
                f"last error: {failure.detail}"
            )
        if failure.kind == "invalid":
            return InvalidInput(f"S3 server {self.cfg.endpoint} rejected {op} {where}: {failure.detail}")
        return Internal(f"S3 {op} {where} failed unexpectedly: {failure.detail}")


class _Reader:
    """Iterates one object's bytes. A transfer that drops is resumed with a ranged GET at the offset
    reached, bounded by the store's attempts. `recorded`/`content_type` are set by the first response."""

    def __init__(self, store: S3Store, key: str, chunk_size: int) -> None:
        self.store = store
        self.key = key
        self.chunk_size = chunk_size
        self.recorded: str | None = None
        self.content_type: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        store, key = self.store, self.key
        name = store._name(key)
        store._ready()
        offset, failures = 0, 0
        size: int | None = None
        etag: str | None = None
        first = True
        while True:
            resp = store._call("get", key, functools.partial(store._get, name, offset, etag))
            if first:
                first = False
                length = resp.headers.get("Content-Length")
                size = int(length) if length and length.isdigit() else None
                etag = resp.headers.get("ETag")
                self.recorded = _recorded_sha(resp.headers)
                self.content_type = resp.headers.get("Content-Type")
            try:
                for block in resp.stream(self.chunk_size, decode_content=False):
                    offset += len(block)
                    yield block
                return  # urllib3 enforces Content-Length: a clean end is the whole object
            except _TRANSPORT as exc:
                failures = store._retry_or_raise(exc, "get", key, failures)
            finally:
                resp.close()
                resp.release_conn()
            if size is not None and offset >= size:
                return  # the connection dropped after the last byte


class _IterReader(io.RawIOBase):
    """A read()-able view of an iterator of byte blocks (to feed copy_and_hash)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._blocks, b"")
        n = len(self._pending) if size is None or size < 0 else size
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


class _Discard(io.RawIOBase):
    """A sink for the hashing pass over a seekable stream."""

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        return len(b)


# -- helpers ----------------------------------------------------------------------------------
def part_size_for(size: int) -> int:
    """Multipart part size: 8 MiB, or more (whole MiB) so that `size` fits in 10,000 parts."""
    needed = math.ceil(size / MAX_PARTS) if size > 0 else 0
    return max(CHUNK, math.ceil(needed / _MIB) * _MIB)


def classify(exc: BaseException) -> _Failure:
    """Classify a minio/urllib3 exception by S3 error code, else HTTP status, else exception type."""
    if isinstance(exc, _TRANSPORT):
        return _Failure("transient", type(exc).__name__, _short(exc))
    code, status = _code_and_status(exc)
    detail = f"{code or 'HTTP ' + str(status)}: {_short(exc)}"
    if code in _NOT_FOUND or (code is None and status == 404):
        return _Failure("not_found", code or "404", detail)
    if code in _DENIED or (code is None and status in (401, 403)):
        return _Failure("denied", code or str(status), detail)
    if code in _TRANSIENT or status in (408, 429) or (status is not None and status >= 500):
        return _Failure("transient", code or str(status), detail)
    if status is not None and 400 <= status < 500:
        return _Failure("invalid", code or str(status), detail)
    return _Failure("other", code or type(exc).__name__, detail)


def _code_and_status(exc: BaseException) -> tuple[str | None, int | None]:
    """(S3 error code, HTTP status). Servers that answer errors as text/xml (rclone) make minio raise
    InvalidResponseError instead of S3Error: the code is then read from the body it carries."""
    if isinstance(exc, S3Error):
        response = exc.response
        return exc.code, (response.status if response is not None else None)
    if isinstance(exc, ServerError):
        return None, exc.status_code
    text = str(exc)
    body = getattr(exc, "_body", None) if isinstance(exc, InvalidResponseError) else None
    code_match = _XML_CODE.search(body or text)
    status = getattr(exc, "_code", None)
    if not isinstance(status, int):
        status_match = _STATUS_IN_TEXT.search(text)
        status = int(status_match.group(1)) if status_match else None
    return (code_match.group(1) if code_match else None), status


def _short(exc: BaseException) -> str:
    """A one-line description; for MaxRetryError, its underlying reason."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and reason is not None:
        exc = reason
    if isinstance(exc, S3Error):
        text = exc.message or exc.code or ""
    else:
        text = str(exc)
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text[:300]}"


def _recorded_sha(headers: object) -> str | None:
    get = getattr(headers, "get", None)
    value = get("x-amz-meta-" + SHA_META) if get else None
    value = value.strip().lower() if isinstance(value, str) else None
    return value if value and _SHA_RE.match(value) else None


def _is_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidInput:
        return False
    return True


def _seekable(stream: BinaryIO) -> bool:
    try:
        if not stream.seekable():
            return False
        stream.tell()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _local_file_size(path: str | Path) -> int:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidInput(f"cannot upload {str(path)!r}: {exc.strerror}") from exc
    if not os.path.isfile(path):
        raise InvalidInput(f"cannot upload {str(path)!r}: not a regular file")
    return st.st_size


def _http_pool(connect_timeout_s: float, read_timeout_s: float) -> urllib3.PoolManager:
    """Connections with short timeouts and at most one urllib3-level retry of an idempotent request
    (no Retry-After sleeps): the store's own loop does the bounded retrying."""
    retry = Retry(
        total=1,
        connect=1,
        read=1,
        status=1,
        other=0,
        backoff_factor=0.1,
        status_forcelist=(500, 502, 503, 504),
        raise_on_status=False,
        respect_retry_after_header=False,
    )
    return urllib3.PoolManager(
        timeout=Timeout(connect=connect_timeout_s, read=read_timeout_s),
        maxsize=16,
        retries=retry,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
    )
