"""ModnetRunner: upstream's ref-size rule, the frame pipeline, batching, limits, precision."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lihq.errors import InvalidInput
from services.modnet.runner import ModnetConfig, ModnetRunner, network_size


@pytest.mark.parametrize(
    "hw, ref, want",
    [
        ((256, 192), 512, (672, 512)),  # long side < ref: short side -> 512, long int(256/192*512)=682 -> 672
        ((192, 256), 512, (512, 672)),
        ((512, 512), 512, (512, 512)),  # neither rule: kept
        ((400, 600), 512, (384, 576)),  # kept, then rounded down to multiples of 32
        ((1080, 1920), 512, (512, 896)),  # short side > ref: int(1920/1080*512)=910 -> 896
        ((600, 800), 512, (512, 672)),
        ((48, 64), 64, (32, 64)),
    ],
)
def test_network_size_follows_upstream(hw, ref, want):
    assert network_size(*hw, ref) == want


@pytest.fixture(scope="module")
def runner(modnet_ckpt):
    return ModnetRunner.from_checkpoint(modnet_ckpt, ModnetConfig(device="cpu", batch_size=2, ref_size=64))


def _frames(n=5, h=40, w=56, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_model_id_names_the_synthetic_seed(runner):
    assert runner.model_id == "synthetic:3"


def test_matte_shapes_range_and_truncation(runner):
    frames = _frames()
    m = runner.matte(frames)
    u8 = runner.matte_uint8(frames)
    assert m.shape == (5, 40, 56) and m.dtype == np.float32
    assert u8.shape == (5, 40, 56) and u8.dtype == np.uint8
    assert 0 <= m.min() and m.max() <= 1
    np.testing.assert_array_equal(u8, (m * 255).astype(np.uint8))  # truncation, like upstream's PNG


def test_runner_pipeline_equals_manual_upstream_steps(runner):
    frames = _frames(n=1, h=40, w=56, seed=1)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = (x - 0.5) / 0.5
    x = torch.nn.functional.interpolate(x, size=network_size(40, 56, 64), mode="area")
    with torch.inference_mode():
        netres = runner.model(x, True)[2]
    back = torch.nn.functional.interpolate(netres, size=(40, 56), mode="area")[:, 0].numpy()
    np.testing.assert_allclose(runner.matte(frames), back, atol=1e-6)


def test_batch_size_does_not_change_mattes(runner):
    frames = _frames(n=5, seed=2)
    one = ModnetRunner(runner.model, replace(runner.cfg, batch_size=1), runner.model_id)
    np.testing.assert_allclose(runner.matte(frames), one.matte(frames), atol=1e-5)


def test_empty_input_gives_empty_output(runner):
    assert runner.matte_uint8(np.zeros((0, 40, 56, 3), np.uint8)).shape == (0, 40, 56)


@pytest.mark.parametrize(
    "frames, needle",
    [
        (np.zeros((1, 40, 56), np.uint8), "shape"),
        (np.zeros((1, 40, 56, 3), np.float32), "uint8"),
        (np.zeros((1, 8, 900, 3), np.uint8), "must reach 32"),
        (np.zeros((1, 200, 20, 3), np.uint8), "too extreme"),
    ],
)
def test_bad_frames_are_invalid_input(modnet_ckpt, frames, needle):
    r = ModnetRunner.from_checkpoint(modnet_ckpt, ModnetConfig(device="cpu", ref_size=512, max_side=4096))
    with pytest.raises(InvalidInput, match=needle):
        r.matte(frames)


@pytest.mark.parametrize(
    "kw, needle",
    [({"precision": "fp8"}, "precision"), ({"batch_size": 0}, "batch_size"), ({"ref_size": 8}, "ref_size")],
)
def test_config_is_checked(kw, needle):
    with pytest.raises(InvalidInput, match=needle):
        ModnetConfig(**kw)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_gpu_reduced_precision_stays_close_to_fp32(modnet_ckpt, precision):
    frames = _frames(n=4, h=256, w=256, seed=3)
    cpu = ModnetRunner.from_checkpoint(modnet_ckpt, ModnetConfig(device="cpu"))
    gpu = ModnetRunner.from_checkpoint(modnet_ckpt, ModnetConfig(device="cuda", precision="fp32"))
    ref = cpu.matte(frames)
    np.testing.assert_allclose(gpu.matte(frames), ref, atol=1e-4)
    assert np.abs(gpu.matte(frames, precision) - ref).max() < 0.05
