"""Conformance: `lihq verify qvi` on the public vectors (components + end-to-end), through the CLI's
dispatcher and the real loader; and a set with other weights must miss."""

from __future__ import annotations

import json
import shutil

import pytest

from lihq.verify import run_verify
from services.qvi import verify
from tests.reference import needs, ref_path

VECTORS = ref_path("qvi", "vectors")
pytestmark = needs("qvi/vectors/vectors.json", "fill_weights.py")


def test_public_vectors_pass():
    rows = run_verify("qvi", VECTORS, 1)
    misses = [r for r in rows if not r.ok]
    assert not misses, misses
    outputs = {(r.case, r.output) for r in rows}
    for case in ("correlation", "forward_warp", "backwarp", "pwc"):
        assert any(c == case for c, _ in outputs), case  # every component vector is compared
    for t in ("0.25", "0.5", "0.75"):
        assert (f"t={t}", "out") in outputs
    assert ("linear t=0.5", "out") in outputs
    assert ("t=0.5", "F12") in outputs and ("t=0.5", "M") in outputs
    assert len(rows) >= 40


def test_set_is_driven_by_its_index_and_wrong_weights_miss(tmp_path):
    """A reduced set (only what its vectors.json lists) runs; seed-7 weights miss the seed-1 outputs."""
    index = json.loads((VECTORS / "vectors.json").read_text())
    keep = [
        "frames_norm.npy",
        "out_t0.75.npy",
        "comp_corr_first.npy",
        "comp_corr_second.npy",
        "comp_corr_out.npy",
    ]
    subset = {k: index[k] for k in keep} | {"_meta": index["_meta"]}
    for name in keep:
        shutil.copy(VECTORS / name, tmp_path / name)
    (tmp_path / "vectors.json").write_text(json.dumps(subset))
    shutil.copy(ref_path("fill_weights.py"), tmp_path / "fill_weights.py")  # a set ships its fill rule
    rows = verify.run(tmp_path, 7, tmp_path / "work")
    by = {(r.case, r.output): r for r in rows}
    assert set(by) == {("correlation", "out"), ("t=0.75", "out"), ("t=0.75", "out (mean)")}
    assert by[("correlation", "out")].ok  # weight-independent
    assert not by[("t=0.75", "out")].ok


def test_not_a_vector_set(tmp_path):
    from lihq.errors import InvalidInput

    with pytest.raises(InvalidInput, match="vectors.json"):
        verify.run(tmp_path, 1, tmp_path / "work")
