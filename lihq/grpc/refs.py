"""ObjectRef <-> store helpers shared by every stage servicer.

A stage never trusts a key from a request: `key_of` validates it (no traversal, right bucket);
`fetch` downloads to a work dir and checks the sha256 the caller sent; `object_digest` gives the
content digest an output key is derived from, without downloading when the store already knows it.
"""

from __future__ import annotations

from pathlib import Path

from lihq.errors import InvalidInput, NotFound
from lihq.storage.base import ObjectInfo, ObjectStore, sha256_file, validate_key
from lihq.v1 import common_pb2


def key_of(store: ObjectStore, ref: common_pb2.ObjectRef, what: str = "object") -> str:
    if ref is None or not ref.key:
        raise InvalidInput(f"{what}: an object key is required")
    if ref.bucket and ref.bucket != store.bucket:
        raise InvalidInput(f"{what}: bucket {ref.bucket!r} is not this deployment's bucket {store.bucket!r}")
    try:
        return validate_key(ref.key)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc.message}") from exc


def stat_ref(store: ObjectStore, ref: common_pb2.ObjectRef, what: str = "object") -> ObjectInfo:
    key = key_of(store, ref, what)
    try:
        info = store.stat(key)
    except NotFound as exc:
        raise NotFound(f"{what}: no object at key {key!r} in bucket {store.bucket!r}") from exc
    if ref.sha256 and info.sha256 and ref.sha256 != info.sha256:
        raise InvalidInput(
            f"{what}: sha256 mismatch for {key!r}: request says {ref.sha256}, store has {info.sha256}"
        )
    return info


def fetch(
    store: ObjectStore, ref: common_pb2.ObjectRef, dest: Path, what: str = "object"
) -> tuple[Path, str]:
    """Download `ref` to `dest`; return (path, sha256 of the bytes), checking the request's sha256."""
    info = stat_ref(store, ref, what)
    store.get_file(info.key, dest)
    digest = sha256_file(dest)
    expected = ref.sha256 or info.sha256
    if expected and expected != digest:
        raise InvalidInput(f"{what}: {info.key!r} has sha256 {digest}, expected {expected}")
    return dest, digest


def fetch_bytes(store: ObjectStore, ref: common_pb2.ObjectRef, what: str = "object") -> tuple[bytes, str]:
    import hashlib

    info = stat_ref(store, ref, what)
    data = store.get_bytes(info.key)
    digest = hashlib.sha256(data).hexdigest()
    expected = ref.sha256 or info.sha256
    if expected and expected != digest:
        raise InvalidInput(f"{what}: {info.key!r} has sha256 {digest}, expected {expected}")
    return data, digest


def object_digest(store: ObjectStore, ref: common_pb2.ObjectRef, what: str = "object") -> str:
    """The content sha256 of `ref`: from the request, else the store's metadata, else by reading it."""
    info = stat_ref(store, ref, what)
    if ref.sha256:
        return ref.sha256
    if info.sha256:
        return info.sha256
    return fetch_bytes(store, ref, what)[1]


def to_ref(store: ObjectStore, info: ObjectInfo) -> common_pb2.ObjectRef:
    return common_pb2.ObjectRef(bucket=store.bucket, key=info.key, sha256=info.sha256 or "", size=info.size)


def render_output_key(
    requested: str, render_id: str, default: str, subdir: str = "", suffix: str = ""
) -> str:
    """The key a stage writes a caller-chosen output to: `default` (content-addressed, derived by the
    stage) when none is asked for, else only a file directly under the calling render's own prefix
    (`renders/<ctx.render_id>/[<subdir>/]<name>[suffix]`, never its render.json): a stage never
    overwrites uploads, another render's files, caches or records."""
    if not requested:
        return default
    try:
        key = validate_key(requested)
    except InvalidInput:
        raise InvalidInput(f"output_key {requested[:100]!r} is not a valid object key") from None
    prefix = f"renders/{render_id}/" + (f"{subdir}/" if subdir else "")
    name = key[len(prefix) :] if render_id and key.startswith(prefix) else ""
    if (
        not render_id
        or "/" in render_id
        or not name
        or "/" in name
        or name == "render.json"
        or render_id.startswith("_")
        or not name.endswith(suffix)
    ):
        raise InvalidInput(
            f"output_key {key[:100]!r}: a stage writes only under its render's own prefix "
            f"renders/<ctx.render_id>/{subdir + '/' if subdir else ''}<name>{suffix} "
            "(leave output_key empty for a content-addressed key)"
        )
    return key
