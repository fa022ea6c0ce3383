"""FOMM on CUDA (skipped without it): fp32 against the public vectors, autocast deviation bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.fomm.runner import AnimateSpec, FommRunner, FommRunnerConfig
from tests.services.fomm.conftest import VECTORS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture(scope="module")
def no_tf32():
    prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev


def test_cuda_fp32_matches_the_vectors(no_tf32, vox_ref_path, vectors):
    runner = FommRunner(FommRunnerConfig(device="cuda", batch_size=4), paths={"vox": vox_ref_path})
    src, drv = vectors["source_u8"], vectors["driving_u8"]
    g = runner.prepare(src, drv)
    pred = runner.animate_float(src, drv, g)
    for i in range(len(drv)):
        with np.load(VECTORS / f"frame_{i:02d}.npz") as z:
            assert np.abs(pred[i] - z["prediction"]).max() <= 1e-4  # README: 1e-5 on CPU, TF32 off


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_stays_close_to_fp32(no_tf32, vox_path, vectors, precision):
    src, drv = vectors["source_u8"], vectors["driving_u8"]
    ref = FommRunner(FommRunnerConfig(device="cuda", batch_size=4), paths={"vox": vox_path})
    g = ref.prepare(src, drv)
    a = ref.animate_float(src, drv, g)
    b = ref.animate_float(src, drv, g, AnimateSpec(precision=precision))
    assert np.abs(a - b).max() < 0.05


def test_channels_last_equals_contiguous_within_tolerance(no_tf32, vox_path, vectors):
    src, drv = vectors["source_u8"], vectors["driving_u8"]
    a_run = FommRunner(FommRunnerConfig(device="cuda", batch_size=4), paths={"vox": vox_path})
    b_run = FommRunner(
        FommRunnerConfig(device="cuda", batch_size=4, channels_last=True), paths={"vox": vox_path}
    )
    g = a_run.prepare(src, drv)
    assert np.abs(a_run.animate_float(src, drv, g) - b_run.animate_float(src, drv, g)).max() <= 1e-4
