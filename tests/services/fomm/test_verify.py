"""`lihq verify fomm` on the public vector set (seed 1) passes, through the real loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lihq_cli.verify import verify
from services.fomm import verify as fomm_verify
from tests.reference import needs
from tests.services.fomm.conftest import VECTORS


@needs("fomm/vectors/inputs.npz", "fill_weights.py")
def test_public_vectors_pass_seed_1(tmp_path: Path):
    rows = fomm_verify.run(VECTORS, 1, tmp_path)
    misses = [r for r in rows if not r.ok]
    assert not misses, misses
    outputs = {r.output for r in rows}
    for name in ("kp value", "kp jacobian", "norm_value", "norm_jacobian", "adapt_movement_scale", "mask",
                 "occlusion_map", "deformation", "sparse_deformed", "deformed", "prediction",
                 "prediction (batched)", "output_f64"):  # fmt: skip
        assert name in outputs
    frames = {r.case for r in rows if r.output == "prediction"}
    assert frames == {f"frame_{i:02d}" for i in range(4)}  # counted from the set's own files
    assert (tmp_path / "fomm" / "vox-cpk.pth.tar").is_file()  # the official layout was synthesized


def test_cli_rejects_a_missing_vector_dir(tmp_path: Path):
    result = CliRunner().invoke(verify, ["fomm", "--vectors", str(tmp_path / "nope"), "--seed", "1"])
    assert result.exit_code != 0


def test_cli_without_vectors_names_the_flag():
    from lihq_cli.main import cli

    result = CliRunner().invoke(cli, ["verify", "fomm"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--vectors DIR" in lines[0], result.output


def test_vectors_without_a_fill_rule_are_refused(tmp_path: Path):
    from lihq.errors import InvalidInput
    from lihq.verify import vector_fill

    vectors = tmp_path / "a" / "b" / "fomm" / "vectors"
    vectors.mkdir(parents=True)
    with pytest.raises(InvalidInput, match="no fill_weights.py"):
        vector_fill(vectors)
    (tmp_path / "a" / "b" / "fill_weights.py").write_text(
        "def fill_tensor(key, shape, seed):\n    return None\n"
    )
    fill, rule = vector_fill(vectors)  # found two levels up, as a set lays it out
    assert callable(fill) and rule.startswith("vectors:")
