"""Synthetic weights give working networks: finite outputs, in range, not saturated, not constant.

Each file is written by `lihq.weights.synth` (LIHQ's own fill rule) and read by the service's real
loader; a fill whose scale is off (saturated sigmoids, collapsed keypoints, NaNs) fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lihq.weights import registry, synth


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic-nets")


def _file(root: Path, name: str, index: int = 0) -> Path:
    entry = registry.get_entry(name)
    path = registry.local_path(entry.files[index], root)
    if not path.is_file():
        synth.synthesize(name, 1, root)
    return path


def _pattern(h: int, w: int, shift: int = 0) -> torch.Tensor:
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack(
        [np.sin(xx * 9) * 0.5 + 0.5, np.cos(yy * 7) * 0.5 + 0.5, ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1)]
    )
    return torch.tensor(np.roll(img, shift, axis=2), dtype=torch.float32)[None]


def _saturated(x: torch.Tensor, lo: float = 0.01, hi: float = 0.99) -> float:
    return float(((x < lo) | (x > hi)).float().mean())


@torch.no_grad()
def test_wav2lip_sigmoid_output_not_saturated(root: Path) -> None:
    from services.wav2lip.checkpoint import load_wav2lip

    net = load_wav2lip(_file(root, "wav2lip_gan"))
    g = torch.Generator().manual_seed(0)
    out = net(torch.randn(2, 1, 80, 16, generator=g), torch.rand(2, 6, 96, 96, generator=g))
    assert out.shape == (2, 3, 96, 96) and torch.isfinite(out).all()
    assert _saturated(out) < 0.5 and float(out.std()) > 1e-3


@torch.no_grad()
def test_fomm_keypoints_spread_and_prediction_in_range(root: Path) -> None:
    from services.fomm.checkpoint import load_nets
    from services.fomm.nets.keypoint_detector import Keypoints

    kp, gen = load_nets(_file(root, "fomm"))
    x = torch.cat([_pattern(256, 256), _pattern(256, 256, 20)])
    k = kp(x)
    assert float(k.value.std()) > 0.03 and float(k.value.abs().max()) <= 1  # not collapsed to one point
    det = torch.linalg.det(k.jacobian).abs()
    assert float(det.min()) > 0.5 and float(det.max()) < 2  # well-conditioned Jacobians
    out = gen(x[:1], Keypoints(k.value[1:], k.jacobian[1:]), Keypoints(k.value[:1], k.jacobian[:1]))
    p = out.prediction
    assert torch.isfinite(p).all() and _saturated(p) < 0.5 and float(p.std()) > 1e-3


@torch.no_grad()
def test_s3fd_and_gfpgan_and_realesrgan_finite(root: Path) -> None:
    from services.gfpgan.checkpoint import load_restorer
    from services.gfpgan.upsampler import build_rrdbnet
    from services.wav2lip.checkpoint import load_s3fd

    s3fd = load_s3fd(_file(root, "s3fd"))
    assert all(torch.isfinite(o).all() for o in s3fd(_pattern(128, 128) * 255 - 120))
    restorer = load_restorer(_file(root, "gfpgan-1.4"), torch.device("cpu"))  # forward: tests/services/gfpgan
    style = restorer.final_linear(torch.zeros(1, restorer.final_linear.in_features))
    assert torch.isfinite(style).all()
    from lihq.weights.loaders import load_state_dict

    rrdb = build_rrdbnet()
    rrdb.load_state_dict(load_state_dict(_file(root, "realesrgan-x2plus"), key="params_ema"), strict=True)
    up = rrdb.eval()(_pattern(16, 16))
    assert up.shape == (1, 3, 32, 32) and torch.isfinite(up).all()


@torch.no_grad()
def test_modnet_matte_in_range_and_varied(root: Path) -> None:
    from services.modnet.checkpoint import load_modnet

    net = load_modnet(_file(root, "modnet"))
    matte = net(_pattern(64, 64) * 2 - 1, True)[2]
    assert float(matte.min()) >= 0 and float(matte.max()) <= 1 and float(matte.std()) > 1e-3
    assert _saturated(matte, 1e-4, 1 - 1e-4) < 0.9


@torch.no_grad()
def test_qvi_interpolates_finite_frames(root: Path) -> None:
    from services.qvi.checkpoint import load_qvi

    model = load_qvi(_file(root, "qvi"))
    frames = [_pattern(32, 32, s) - 0.4 for s in (0, 2, 4, 6)]  # the runner feeds RGB minus MEAN
    out = model(*frames, 0.5)
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
