"""`lihq verify wav2lip` and `lihq verify s3fd` on the public vectors (seed 1), and a caught miss."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from lihq.verify import run_verify
from tests.reference import ref_path
from tests.services.wav2lip.conftest import S3FD_VECTORS, W2L_VECTORS, needs_verify_sets

pytestmark = needs_verify_sets


def test_wav2lip_public_vectors_pass() -> None:
    rows = run_verify("wav2lip", W2L_VECTORS, 1)
    outputs = {r.output for r in rows}
    assert {"wav_f32", "mel_f64", "faces96_bgr_u8", "face_windows", "mel_chunks", "output"} <= outputs
    assert sum(r.case == "mel_index" for r in rows) >= 10 and sum(r.case == "smoothing" for r in rows) >= 2
    assert [r for r in rows if not r.ok] == []


def test_s3fd_public_vectors_pass() -> None:
    rows = run_verify("s3fd", S3FD_VECTORS, 1)
    assert len(rows) == 15 and [r for r in rows if not r.ok] == []


def test_s3fd_verify_catches_a_wrong_detection(tmp_path: Path) -> None:
    vectors = tmp_path / "vectors"
    shutil.copytree(S3FD_VECTORS, vectors)
    shutil.copy(ref_path("fill_weights.py"), tmp_path / "fill_weights.py")  # the set's fill rule, beside it
    data = dict(np.load(vectors / "s3fd_vectors.npz"))
    data["detections_x1y1x2y2"] = data["detections_x1y1x2y2"] + 1
    np.savez(vectors / "s3fd_vectors.npz", **data)
    rows = run_verify("s3fd", vectors, 1)
    assert {r.output for r in rows if not r.ok} == {"detections_x1y1x2y2", "detections via full NMS path"}
