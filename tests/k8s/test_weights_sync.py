"""The GPU pods' weights sync: upload with SHA256SUMS, sync with a digest check on every byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lihq.errors import FailedPrecondition, InvalidInput
from lihq.storage import FileStore
from lihq_cli.k8s.weights import SUMS, parse_sums, sync, upload

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def weights_dir(tmp_path: Path) -> Path:
    src = tmp_path / "weights"
    (src / "fomm").mkdir(parents=True)
    (src / "fomm" / "vox-cpk.pth.tar").write_bytes(b"fomm" * 1000)
    (src / "wav2lip_gan.pth").write_bytes(b"w2l" * 777)
    (src / "wav2lip_gan.pth.synthetic.json").write_text('{"seed": 1}')
    (src / "gfpgan.pth.part").write_bytes(b"half a download")  # never uploaded
    return src


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_then_sync_reproduces_the_tree(tmp_path, weights_dir):
    store = FileStore(tmp_path / "store", "lihq")
    sums = upload(store, weights_dir, "weights/")
    assert set(sums) == {"fomm/vox-cpk.pth.tar", "wav2lip_gan.pth", "wav2lip_gan.pth.synthetic.json"}
    assert parse_sums(store.get_bytes(f"weights/{SUMS}").decode()) == sums
    dest = tmp_path / "pod" / "weights"
    report = sync(store, dest, "weights/")
    assert sorted(report.downloaded) == sorted(sums) and report.present == ()
    for rel, d in sums.items():
        assert digest(dest / rel) == d == digest(weights_dir / rel)
    again = sync(store, dest, "weights")  # a restarted pod with its files still there: nothing to fetch
    assert again.downloaded == () and sorted(again.present) == sorted(sums)


def test_a_corrupt_object_fails_the_sync_and_leaves_no_file(tmp_path, weights_dir):
    store = FileStore(tmp_path / "store", "lihq")
    upload(store, weights_dir, "weights/")
    store.put_bytes("weights/wav2lip_gan.pth", b"not the checkpoint")  # swapped behind SHA256SUMS' back
    dest = tmp_path / "dest"
    with pytest.raises(FailedPrecondition, match="wav2lip_gan.pth: downloaded bytes hash to"):
        sync(store, dest, "weights/")
    assert not (dest / "wav2lip_gan.pth").exists()


def test_a_tampered_local_file_is_fetched_again(tmp_path, weights_dir):
    store = FileStore(tmp_path / "store", "lihq")
    upload(store, weights_dir, "weights/")
    dest = tmp_path / "dest"
    sync(store, dest, "weights/")
    (dest / "fomm" / "vox-cpk.pth.tar").write_bytes(b"truncated")
    report = sync(store, dest, "weights/")
    assert report.downloaded == ("fomm/vox-cpk.pth.tar",)
    assert digest(dest / "fomm" / "vox-cpk.pth.tar") == digest(weights_dir / "fomm" / "vox-cpk.pth.tar")


def test_missing_sums_and_bad_sums_are_explained(tmp_path):
    store = FileStore(tmp_path / "store", "lihq")
    with pytest.raises(FailedPrecondition, match=r"no weights/SHA256SUMS .*upload the weights first"):
        sync(store, tmp_path / "dest", "weights/")
    with pytest.raises(InvalidInput, match="line 1"):
        parse_sums("abc  x.pth\n")
    with pytest.raises(InvalidInput):
        parse_sums("0" * 64 + "  ../etc/passwd\n")


@pytest.mark.integration
def test_the_init_container_command_against_s3(s3_server, tmp_path, weights_dir):
    env = dict(os.environ)
    env.update(
        LIHQ_S3_ENDPOINT=s3_server.endpoint,
        LIHQ_S3_ACCESS_KEY=s3_server.access_key,
        LIHQ_S3_SECRET_KEY=s3_server.secret_key,
        LIHQ_BUCKET="weights-it",
        LIHQ_WEIGHTS_PREFIX="models/",
    )

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "lihq_cli.k8s.weights", *args]
        return subprocess.run(cmd, cwd=REPO, env=env | extra, capture_output=True, text=True, timeout=120)

    up = run("upload", "--src", str(weights_dir))
    assert up.returncode == 0 and "uploaded 3 files and SHA256SUMS under models/" in up.stdout, up.stderr
    dest = tmp_path / "pod-weights"
    down = run("sync", LIHQ_WEIGHTS_DIR=str(dest))  # as in the pod: the destination from LIHQ_WEIGHTS_DIR
    assert down.returncode == 0 and "3 downloaded, 0 already present" in down.stdout, down.stderr
    assert digest(dest / "wav2lip_gan.pth") == digest(weights_dir / "wav2lip_gan.pth")
    missing = run("sync", LIHQ_WEIGHTS_DIR=str(dest), LIHQ_WEIGHTS_PREFIX="nothing-here/")
    assert missing.returncode == 1 and "upload the weights first" in missing.stderr
