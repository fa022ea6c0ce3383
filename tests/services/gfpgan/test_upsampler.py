"""RealESRGAN x2plus background upsampler: synthetic weights, RealESRGANer's steps, GFPGANer use."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lihq.errors import WeightsMissing
from lihq.weights import weights_id
from services.gfpgan.batched import BatchSettings, FacePlan, restore_segment
from services.gfpgan.noise import NoiseSpec, NoisyRestorer
from services.gfpgan.reference import enhance_frames
from services.gfpgan.synth_bg import synthesize_realesrgan
from services.gfpgan.upsampler import BackgroundUpsampler
from tests.services.gfpgan.fakes import InjectedDetector, make_frames, tiny_models

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def upsampler(tmp_path_factory):
    root = tmp_path_factory.mktemp("bg-weights")
    path = synthesize_realesrgan(2, root)
    assert weights_id(path) == "synthetic:2"
    return BackgroundUpsampler.from_weights_dir(root, CPU, batch_size=1)


def realesrganer_steps(net: torch.nn.Module, img: np.ndarray, outscale: float) -> np.ndarray:
    """RealESRGANer.enhance (scale 2, pre_pad 0, no tiling) written out step by step for uint8 BGR."""
    x = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2RGB)
    t = torch.from_numpy(np.transpose(x, (2, 0, 1))).float()[None]
    h, w = t.shape[2:]
    t = F.pad(t, (0, w % 2, 0, h % 2), "reflect")
    with torch.no_grad():
        out = net(t)[:, :, : 2 * h, : 2 * w]
    out = out.squeeze().float().clamp_(0, 1).numpy()
    out = (np.transpose(out[[2, 1, 0]], (1, 2, 0)) * 255.0).round().astype(np.uint8)
    if outscale != 2:
        out = cv2.resize(out, (int(w * outscale), int(h * outscale)), interpolation=cv2.INTER_LANCZOS4)
    return out


def test_enhance_follows_realesrganer(upsampler):
    rng = np.random.default_rng(1)
    for shape, scale in (((19, 23, 3), 4), ((16, 16, 3), 1)):
        img = rng.integers(0, 256, size=shape, dtype=np.uint8)
        out, mode = upsampler.enhance(img, outscale=scale)
        assert mode == "RGB" and out.shape == (int(shape[0] * scale), int(shape[1] * scale), 3)
        assert np.array_equal(out, realesrganer_steps(upsampler.net, img, scale))


def test_batch_equals_single_and_tiles_cover_the_frame(upsampler):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, size=(2, 18, 22, 3), dtype=np.uint8)
    batch = upsampler.enhance_batch(frames, 4)
    assert all(np.array_equal(b, upsampler.enhance(f, 4)[0]) for b, f in zip(batch, frames, strict=True))
    tiled = BackgroundUpsampler(upsampler.net, CPU, tile=8, tile_pad=2)
    out = tiled.enhance(frames[0], 2)[0]
    assert out.shape == (36, 44, 3)
    whole = BackgroundUpsampler(upsampler.net, CPU, tile=64)
    assert np.array_equal(whole.enhance(frames[0], 2)[0], upsampler.enhance(frames[0], 2)[0])


def test_missing_weights_name_the_fetch_command(tmp_path):
    with pytest.raises(WeightsMissing, match="lihq weights fetch realesrgan-x2plus"):
        BackgroundUpsampler.from_weights_dir(tmp_path, CPU)


def test_gfpganer_with_background_equals_batched_path(upsampler, face_models):
    frames, dets = make_frames(1, 48, seed=9)
    models = tiny_models(face_models, InjectedDetector(frames, dets))
    net = NoisyRestorer(models.restorers["1.4"], NoiseSpec("seeded", 1), CPU)
    out = restore_segment(
        models, net, frames, FacePlan(scale=2), BatchSettings(batch_size=1), background=upsampler
    )
    ref = enhance_frames(models, net, frames, 2, background=upsampler)
    plain = enhance_frames(models, net, frames, 2)
    assert np.array_equal(out.frames[0], ref[0])
    assert not np.array_equal(ref[0], plain[0])  # the background really came from the upsampler
