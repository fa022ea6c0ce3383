"""CUDA runs of the runner (skipped without a GPU): fp32 matches the CPU, bf16/fp16 stay close."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.qvi.runner import QVIRunner, QVIRunnerConfig, model_path
from tests.services.qvi.conftest import moving_clip

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture(scope="module")
def gpu_runner(qvi_weights):
    return QVIRunner(QVIRunnerConfig(model_path(qvi_weights), device="cuda", batch_size=4))


@pytest.mark.parametrize("precision, max_levels", [("fp32", 2), ("bf16", 24), ("fp16", 8)])
def test_cuda_matches_cpu(gpu_runner, qvi_runner, precision, max_levels):
    clip = moving_clip(5, 96, 128, seed=2)
    cpu = qvi_runner.interpolate_clip(clip, 3).astype(np.int16)
    gpu = gpu_runner.interpolate_clip(clip, 3, precision).astype(np.int16)
    diff = np.abs(cpu - gpu)
    assert diff.max() <= max_levels and diff.mean() < 0.5, (precision, diff.max(), diff.mean())
