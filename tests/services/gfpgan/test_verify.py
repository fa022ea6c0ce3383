"""`lihq verify gfpgan` on the public vectors (seed 1), and how vector sets are read."""

from __future__ import annotations

import pytest

from lihq.errors import InvalidInput
from lihq.verify import run_verify
from services.gfpgan.verify import parse_cases
from tests.reference import needs, ref_path

VECTORS = ref_path("gfpgan", "vectors")


@needs("gfpgan/vectors/vectors.json", "fill_weights.py")
def test_public_vectors_pass():
    rows = run_verify("gfpgan", VECTORS, 1)
    outputs = {r.output for r in rows}
    assert {"style_code", "out_rgb_8", "out_rgb_128"} <= outputs
    assert any(o.startswith("output") for o in outputs) and any(o.startswith("restored") for o in outputs)
    assert any(o.startswith("fingerprint") for o in outputs)
    misses = [r for r in rows if not r.ok]
    assert not misses, misses


def test_cases_are_grouped_by_name_suffix():
    spec = {
        "input_face_bgr_uint8.npy": {},
        "output_f32_rows256_511.npy": {},
        "output_f32_rows000_255.npy": {},
        "out_rgb_8.npy": {},
        "input_f16.npy": {},
        "input_face_bgr_uint8_side.npy": {},
        "output_f32_side.npy": {},
        "style_code_side.npy": {},
        "restored_face_bgr_uint8_side.npy": {},
        "README.md": {},
    }
    cases = parse_cases(spec)
    assert set(cases) == {"", "_side"}
    assert [n for _, n in sorted(cases[""].rows)] == [
        "output_f32_rows000_255.npy",
        "output_f32_rows256_511.npy",
    ]
    assert cases[""].rgb == {8: "out_rgb_8.npy"} and cases[""].name == "face"
    side = cases["_side"]
    assert (side.name, side.output, side.style) == ("side", "output_f32_side.npy", "style_code_side.npy")
    with pytest.raises(InvalidInput, match="input_face_bgr_uint8"):
        parse_cases({"style_code.npy": {}})
