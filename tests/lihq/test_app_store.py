"""open_app_store: a Serve replica's store from its environment, bucket/prefix overridable by app args."""

from __future__ import annotations

from lihq.storage import FileStore, open_app_store


def test_env_store_with_app_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("LIHQ_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("LIHQ_BUCKET", "from-env")
    monkeypatch.delenv("LIHQ_S3_ENDPOINT", raising=False)
    plain = open_app_store()
    assert isinstance(plain, FileStore) and plain.bucket == "from-env"
    tenant = open_app_store("other", "tenant-a")
    tenant.put_bytes("x/y.bin", b"data")
    assert tenant.bucket == "other" and tenant.get_bytes("x/y.bin") == b"data"
    assert [o.key for o in tenant.list("")] == ["x/y.bin"]  # keys are relative to the prefix
    assert (tmp_path / "store" / "other" / "tenant-a" / "x" / "y.bin").is_file()
