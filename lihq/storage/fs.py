"""FileStore: the embedded default object store, one directory tree per bucket (docs/architecture.md §4).

Layout: the object `key` of bucket `b` under prefix `p` is the file `root/b/p/key`. Next to it, a
sidecar `key#meta.json` records the sha256, size and content type we wrote, plus the file's identity
(inode, size, mtime_ns) so a sidecar left from an older version of the object is never trusted.
'#' can never appear in a valid key, so sidecars and temp files (`.#tmp-*`) never collide with an
object and `list` skips them.

Writes are atomic: the bytes go to a temp file in the destination directory, are fsynced, and are
renamed into place with `os.replace`; a reader sees either the old or the new object, never a part.
Every key goes through `validate_key`, and the resolved path must stay under the store's directory
(a symlink inside the tree cannot redirect a write outside it).

Limits: a key and a key below it ('a' and 'a/b') cannot both exist (FailedPrecondition); empty
directories are left behind by `delete` (removing them would race with concurrent writers).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat as stat_mode
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from lihq.errors import (
    FailedPrecondition,
    InvalidInput,
    LihqError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from lihq.storage.base import (
    CHUNK,
    DEFAULT_CONTENT_TYPE,
    ObjectInfo,
    ObjectStore,
    atomic_download,
    copy_and_hash,
    normalize_prefix,
    validate_bucket,
    validate_key,
    validate_prefix,
    verify_digest,
)

META_SUFFIX = "#meta.json"
_TMP_PREFIX = ".#tmp-"


class FileStore(ObjectStore):
    """Objects as files under `root/bucket/prefix/`. Safe for concurrent use by threads and processes."""

    # each call is mostly this process's CPU (measured: bench/control_plane_bench.py, bench/README.md)
    concurrent_calls_help = False

    def __init__(self, root: Path, bucket: str, prefix: str = "") -> None:
        self.root = Path(root).expanduser().absolute()
        self.bucket = validate_bucket(bucket)
        self.prefix = normalize_prefix(prefix)
        self.base = (
            self.root.joinpath(self.bucket, *self.prefix.split("/")) if self.prefix else self.root / bucket
        )
        self._real_base = ""

    def describe(self) -> str:
        return f"file://{self.base}"

    # -- paths --------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        """The file of `key`; raises InvalidInput for a bad key or one that resolves outside `base`."""
        validate_key(key)
        path = self.base.joinpath(*key.split("/"))
        self._check_inside(path, key)
        return path

    def _check_inside(self, path: Path, what: str) -> None:
        """`path` (base + a validated key: no '.' or '..' segments) stays inside the store directory.
        Only a symlink below `base` can lead out, so the components below it are lstat'ed (the key's
        depth, not the whole path twice as realpath would) and a symlink, if met, is resolved fully."""
        base, full = str(self.base), str(path)
        if full != base:
            if not full.startswith(base + os.sep):
                raise InvalidInput(f"object key {what!r} resolves outside the store directory {self.base}")
            cur = base
            for part in full[len(base) + 1 :].split(os.sep):
                cur += os.sep + part
                try:
                    if not stat_mode.S_ISLNK(os.lstat(cur).st_mode):
                        continue
                except OSError:  # not there (yet): nothing below it can be a link
                    return
                break
            else:
                return
        real_base = self._real_base or os.path.realpath(self.base)
        self._real_base = real_base  # the operator's directory: resolved once
        real = os.path.realpath(path)
        if real != real_base and not real.startswith(real_base + os.sep):
            raise InvalidInput(f"object key {what!r} resolves outside the store directory {self.base}")

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(path.name + META_SUFFIX)

    # -- writes -------------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        return self._write(key, lambda f: _write_all(f, data), content_type)

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> ObjectInfo:
        src = _open_local(path)
        with src:
            return self._write(key, lambda f: copy_and_hash(src, f), content_type)

    def put_stream(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str | None = None
    ) -> ObjectInfo:
        """Copies `length` bytes (all, when -1) from the stream's current position; reads it once."""
        return self._write(key, lambda f: copy_and_hash(stream, f, length), content_type)

    def _write(
        self, key: str, fill: Callable[[BinaryIO], tuple[int, str]], content_type: str | None
    ) -> ObjectInfo:
        """Write through a temp file + os.replace, then the sidecar. `fill` returns (size, sha256)."""
        path = self._path(key)
        ctype = content_type or DEFAULT_CONTENT_TYPE
        self._make_parent(path, key)
        tmp = path.with_name(_TMP_PREFIX + secrets.token_hex(8))
        try:
            with open(tmp, "xb") as f:
                size, digest = fill(f)
                f.flush()
                os.fsync(f.fileno())
                ident = _identity(os.fstat(f.fileno()))
            if path.is_dir():
                raise FailedPrecondition(
                    f"object key {key!r} is a directory of other objects in {self.describe()}; "
                    "the filesystem store cannot hold a key and keys below it"
                )
            os.replace(tmp, path)
        except OSError as exc:
            raise _os_error(exc, key, "write", self) from exc
        finally:
            tmp.unlink(missing_ok=True)
        meta = {"sha256": digest, "size": size, "content_type": ctype, "identity": ident}
        self._write_meta(path, meta, key)
        return ObjectInfo(key, size, digest, ctype)

    def put_marker(self, key: str) -> ObjectInfo:
        """An empty object in one create + fsync: no temp file (there is no content to half-write) and no
        sidecar (a stale one no longer matches the file's identity, so it is ignored)."""
        path = self._path(key)
        self._make_parent(path, key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except IsADirectoryError as exc:
            raise FailedPrecondition(
                f"object key {key!r} is a directory of other objects in {self.describe()}; "
                "the filesystem store cannot hold a key and keys below it"
            ) from exc
        except OSError as exc:
            raise _os_error(exc, key, "write", self) from exc
        return ObjectInfo(key, 0, hashlib.sha256(b"").hexdigest(), DEFAULT_CONTENT_TYPE)

    def _make_parent(self, path: Path, key: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise FailedPrecondition(
                f"object key {key!r}: a parent of it is already an object in {self.describe()}; "
                "the filesystem store cannot hold a key and keys below it"
            ) from exc
        except OSError as exc:
            raise _os_error(exc, key, "write", self) from exc
        # mkdir may have followed a symlinked directory planted since _path checked.
        self._check_inside(path, key)

    def _write_meta(self, path: Path, meta: dict[str, object], key: str) -> None:
        mpath = self._meta_path(path)
        tmp = path.with_name(_TMP_PREFIX + secrets.token_hex(8))
        try:
            tmp.write_text(json.dumps(meta, sort_keys=True))
            os.replace(tmp, mpath)
        except OSError as exc:
            raise _os_error(exc, key, "write metadata of", self) from exc
        finally:
            tmp.unlink(missing_ok=True)

    # -- reads --------------------------------------------------------------------------------
    def _open(self, key: str) -> tuple[BinaryIO, ObjectInfo]:
        """Open the object for reading; the info describes exactly the opened file (its sidecar is
        trusted only when it was written for this very file)."""
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise self._not_found(key) from exc
        except OSError as exc:
            raise _os_error(exc, key, "read", self) from exc
        try:
            st = os.fstat(f.fileno())
            if not stat_mode.S_ISREG(st.st_mode):
                raise self._not_found(key)
            return f, self._info(key, path, st)
        except BaseException:
            f.close()
            raise

    def _info(self, key: str, path: Path, st: os.stat_result) -> ObjectInfo:
        meta = self._read_meta(path)
        if meta is None or meta.get("identity") != _identity(st):
            return ObjectInfo(key, st.st_size, None, None)
        sha = meta.get("sha256")
        ctype = meta.get("content_type")
        return ObjectInfo(
            key, st.st_size, sha if isinstance(sha, str) else None, ctype if isinstance(ctype, str) else None
        )

    def _read_meta(self, path: Path) -> dict[str, object] | None:
        try:
            meta = json.loads(self._meta_path(path).read_text())
        except (OSError, ValueError):
            return None  # no sidecar, or a damaged one: the object's sha256 is simply unknown
        return meta if isinstance(meta, dict) else None

    def _not_found(self, key: str) -> NotFound:
        return NotFound(f"object {key!r} not found in {self.describe()}")

    def stat(self, key: str) -> ObjectInfo:
        f, info = self._open(key)
        f.close()
        return info

    def get_bytes(self, key: str) -> bytes:
        f, info = self._open(key)
        with f:
            data = _read_all(f, key, self)
        verify_digest(key, info.sha256, hashlib.sha256(data).hexdigest())
        return data

    def get_file(self, key: str, path: str | Path) -> ObjectInfo:
        """Copy to `path` (parents created) via a temp file + rename; checks the recorded sha256."""
        f, info = self._open(key)
        with f:
            size, digest = atomic_download(path, lambda out: copy_and_hash(f, out), key, info.sha256)
        return ObjectInfo(key, size, digest, info.content_type)

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        f, _ = self._open(key)
        with f:
            while block := f.read(chunk_size):
                yield block

    def _list_top(self, prefix: str) -> tuple[Path, str]:
        """The directory a listing of `prefix` walks, and its key prefix (checked to be inside)."""
        validate_prefix(prefix)
        top_rel = prefix.rpartition("/")[0]
        top = self.base.joinpath(*top_rel.split("/")) if top_rel else self.base
        self._check_inside(top, prefix)
        return top, top_rel

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        top, top_rel = self._list_top(prefix)
        found = sorted((k, s) for k, s in _walk(top, top_rel) if k.startswith(prefix))
        for key, size in found:
            yield ObjectInfo(key, size)

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        """A page without walking everything: directory names are sorted and skipped by name first, and
        only the objects returned are stat'ed."""
        top, top_rel = self._list_top(prefix)
        out: list[ObjectInfo] = []
        for key, path in _walk_sorted(top, top_rel, prefix, start_after):
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while we listed
            if stat_mode.S_ISREG(st.st_mode):
                out.append(ObjectInfo(key, st.st_size))
                if len(out) >= limit:
                    break
        return out

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)
            self._meta_path(path).unlink(missing_ok=True)
        except (NotADirectoryError, IsADirectoryError):
            return  # a parent is an object, or the key is a directory: no such object
        except OSError as exc:
            raise _os_error(exc, key, "delete", self) from exc


# -- helpers ----------------------------------------------------------------------------------
def _identity(st: os.stat_result) -> list[int]:
    """What ties a sidecar to one version of a file: rename keeps inode and mtime."""
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _write_all(f: BinaryIO, data: bytes) -> tuple[int, str]:
    f.write(data)
    return len(data), hashlib.sha256(data).hexdigest()


def _read_all(f: BinaryIO, key: str, store: FileStore) -> bytes:
    try:
        return f.read()
    except OSError as exc:
        raise _os_error(exc, key, "read", store) from exc


def _open_local(path: str | Path) -> BinaryIO:
    """Open a local file to upload; a missing or unreadable one is the caller's mistake."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise InvalidInput(f"cannot upload {str(path)!r}: not an existing file") from exc
    except PermissionError as exc:
        raise PermissionDenied(f"cannot read {str(path)!r} to upload it: {exc.strerror}") from exc


def _walk(directory: Path, rel: str) -> Iterator[tuple[str, int]]:
    """(key, size) of every regular file below `directory` whose path is a valid key.

    Symlinks are not followed; sidecars, temp files and foreign names are skipped.
    """
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if "#" in entry.name:
            continue
        key = f"{rel}/{entry.name}" if rel else entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                validate_key(key)
                yield key, entry.stat(follow_symlinks=False).st_size
        except (InvalidInput, FileNotFoundError):
            continue  # not one of our keys, or deleted while we listed


def _walk_sorted(directory: Path, rel: str, prefix: str, after: str) -> Iterator[tuple[str, str]]:
    """(key, path) below `directory` in key order, lazily: a subtree whose keys all sort at or before
    `after`, or that cannot match `prefix`, is never opened. Files are not stat'ed here."""
    try:
        entries = [e for e in os.scandir(directory) if "#" not in e.name]
    except (FileNotFoundError, NotADirectoryError):
        return
    # a directory's keys all start with name + "/": sorting it under that name keeps full key order
    dirs = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
    for name in sorted((e.name for e in entries), key=lambda n: n + "/" if n in dirs else n):
        key = f"{rel}/{name}" if rel else name
        path = os.path.join(directory, name)
        if name in dirs:
            if not (key.startswith(prefix) or prefix.startswith(key + "/")):
                continue
            if after and key + "/\uffff" <= after:
                continue
            yield from _walk_sorted(Path(path), key, prefix, after)
        elif key > after and key.startswith(prefix):
            try:
                validate_key(key)
            except InvalidInput:
                continue
            yield key, path


def _os_error(exc: OSError, key: str, op: str, store: FileStore) -> LihqError:
    """Map a filesystem error to the typed error a caller can act on."""
    where = f"object {key!r} in {store.describe()}"
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"cannot {op} {where}: permission denied ({exc.filename})")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(f"cannot {op} {where}: no space left on the device")
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidInput(f"cannot {op} {where}: a key segment is too long for the filesystem")
    if exc.errno == errno.EROFS:
        return FailedPrecondition(f"cannot {op} {where}: the filesystem is read-only")
    return Unavailable(f"cannot {op} {where}: {exc.strerror or exc}")
