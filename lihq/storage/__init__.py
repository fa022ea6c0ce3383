"""Object storage: one interface (`ObjectStore`), a filesystem store (the embedded default) and an
S3 store (any S3-compatible server through `minio`). `open_store` picks one from `StoreConfig`."""

from __future__ import annotations

from dataclasses import replace

from lihq.config import StoreConfig
from lihq.storage.base import ObjectInfo, ObjectStore, content_key, validate_key
from lihq.storage.fs import FileStore
from lihq.storage.s3 import S3Store

__all__ = [
    "FileStore",
    "ObjectInfo",
    "ObjectStore",
    "S3Store",
    "content_key",
    "open_app_store",
    "open_store",
    "validate_key",
]


def open_store(cfg: StoreConfig | None = None) -> ObjectStore:
    """The configured store: S3 when `cfg.s3` is set, else files under `cfg.root`.

    `cfg` defaults to `StoreConfig.from_env()` (LIHQ_S3_ENDPOINT etc.). Opening does no I/O: an S3
    bucket is created (when missing) on first use, so this works while the server is still starting.
    """
    cfg = cfg or StoreConfig.from_env()
    if cfg.s3 is not None:
        return S3Store(cfg.s3, cfg.bucket, cfg.prefix)
    return FileStore(cfg.root, cfg.bucket, cfg.prefix)


def open_app_store(bucket: str | None = None, prefix: str | None = None) -> ObjectStore:
    """The store a Serve app replica uses: LIHQ_* from its environment (credentials travel as env /
    Secrets, never in Serve configs), with the non-secret bucket / prefix overridable by app args."""
    cfg = StoreConfig.from_env()
    if bucket:
        cfg = replace(cfg, bucket=bucket)
    if prefix is not None:
        cfg = replace(cfg, prefix=prefix)
    return open_store(cfg)
