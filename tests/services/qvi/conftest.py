"""QVI fixtures: seed-1 synthetic weights in the official layout (session), a CPU runner on them,
and small moving test clips (uint8 RGB, 64x64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lihq.weights.synth import synthesize
from services.qvi.runner import QVIRunner, QVIRunnerConfig, model_path


def moving_clip(n: int, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """n frames (n, h, w, 3) uint8 RGB: a drifting pattern plus a blob on a parabola."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for i in range(n):
        cx, cy = w * 0.3 + 3 * i + 0.4 * i * i, h * 0.5 + 2 * i
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 50.0)
        img = np.stack(
            [
                128 + 90 * np.sin((xx + 2 * i) / 7 + phase[0]),
                128 + 90 * np.cos((yy - i) / 9 + phase[1]),
                70 + 170 * blob + 10 * np.sin(phase[2] + xx / 5),
            ],
            -1,
        )
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(frames)


@pytest.fixture(scope="session")
def qvi_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weights dir holding qvi/model.pt + qvi/pwc-checkpoint.pt (synthetic, seed 1)."""
    root = tmp_path_factory.mktemp("qvi-weights")
    synthesize("qvi", 1, root)
    return root


@pytest.fixture(scope="session")
def qvi_runner(qvi_weights: Path) -> QVIRunner:
    torch.manual_seed(0)
    return QVIRunner(QVIRunnerConfig(model_path(qvi_weights), device="cpu", batch_size=3))
