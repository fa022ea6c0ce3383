"""Reduced precision against the vectors: `lihq verify MODEL --precision bf16|fp16` (lihq/precision.py)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from lihq.precision import TOLERANCES, autocast_everywhere, bound, tolerance_for
from lihq.verify import run_verify_at
from tests.reference import needs, ref_path


def test_bound_is_twice_the_measurement_rounded_up_and_never_below_fp32() -> None:
    assert bound(0.0123, 1e-5) == 0.03
    assert bound(14.0, 1.0) == 30
    assert bound(0.5, 1.0) == 1.0  # within the fp32 tolerance: keep it
    assert tolerance_for("nosuchmodel", "bf16", "x", 2e-5) == 2e-5


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_everywhere_runs_convolutions_in_the_precision(precision: str, dtype: torch.dtype) -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast_everywhere(precision):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == dtype
    with autocast_everywhere("fp32"):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.float32


def test_every_network_has_measured_tolerances_for_the_precision_it_can_run() -> None:
    assert set(TOLERANCES) >= {"fomm", "wav2lip", "s3fd", "modnet", "qvi", "gfpgan"}
    for model, by_prec in TOLERANCES.items():
        for prec, table in by_prec.items():
            assert prec in ("bf16", "fp16") and table, (model, prec)


@needs("s3fd/vectors", "fill_weights.py")
def test_s3fd_bf16_passes_with_its_measured_tolerances_and_misses_with_fp32_ones() -> None:
    from lihq.verify import run_verify
    from lihq_cli.main import cli

    vectors = ref_path("s3fd", "vectors")
    rows = run_verify_at("s3fd", vectors, 1, "bf16")
    assert rows and all(r.ok for r in rows), [r for r in rows if not r.ok]
    with autocast_everywhere("bf16"):  # the same run graded with the fp32 tolerances misses
        assert not all(r.ok for r in run_verify("s3fd", vectors, 1))
    res = CliRunner().invoke(cli, ["verify", "s3fd", "--vectors", str(vectors), "--precision", "bf16"])
    assert res.exit_code == 0 and "bf16" in res.output, res.output
