"""GfpganRunner: parameters, weights handling (no network, ever), detection, output sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lihq.errors import InvalidInput, WeightsMissing
from services.gfpgan.compat import OLD_MODULE, install, upstream
from services.gfpgan.detect import detect_batch
from services.gfpgan.noise import NoiseSpec
from services.gfpgan.runner import GfpganConfig, GfpganRunner, RestoreParams
from tests.services.gfpgan.fakes import InjectedDetector, make_frames, tiny_models


def test_shim_registers_the_removed_torchvision_module():
    import sys

    import torchvision.transforms.functional as tf

    install()
    assert install() in (True, False)  # idempotent
    assert sys.modules[OLD_MODULE].rgb_to_grayscale is tf.rgb_to_grayscale
    assert upstream().GFPGANv1Clean.__module__ == "gfpgan.archs.gfpganv1_clean_arch"


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(version="2.0"), "version"),
        (dict(upscale=0), "upscale"),
        (dict(upscale=9), "upscale"),
        (dict(output_size=8), "output_size"),
        (dict(smooth_radius=30), "smooth_radius"),
        (dict(precision="fp8"), "precision"),
    ],
)
def test_bad_params_are_invalid_input(kw, needle):
    with pytest.raises(InvalidInput, match=needle):
        RestoreParams(**kw).validate()
    with pytest.raises(InvalidInput, match="noise mode"):
        NoiseSpec("wobbly")


def test_output_size_replaces_upscale():
    assert RestoreParams(upscale=4, output_size=256).scale_for(256, 256) == 1.0
    assert RestoreParams(output_size=256).scale_for(96, 128) == 2.0
    assert RestoreParams(upscale=3).scale_for(10, 10) == 3.0


@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt by facexlib / basicsr / torch.hub to download fails the test."""

    def boom(*a, **k):
        raise AssertionError(f"a download was attempted: {a}")

    upstream()
    import basicsr.utils.download_util as bdu
    import facexlib.utils.misc as fmisc

    monkeypatch.setattr(fmisc, "download_url_to_file", boom)
    monkeypatch.setattr(bdu, "download_url_to_file", boom, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)


def test_missing_weights_name_the_fetch_command_and_never_download(tmp_path, weights_dir, no_downloads):
    rgb = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(WeightsMissing, match="lihq weights fetch facexlib"):
        GfpganRunner(GfpganConfig(weights_dir=tmp_path)).restore(rgb, RestoreParams())
    runner = GfpganRunner(GfpganConfig(weights_dir=weights_dir))
    with pytest.raises(WeightsMissing, match="lihq weights fetch gfpgan-1.3"):
        runner.model_id(RestoreParams(version="1.3"))
    assert not list(tmp_path.iterdir())  # nothing was written where weights were looked for


def test_batched_detection_decodes_like_detect_faces(face_models):
    det = face_models.detector  # facexlib RetinaFace with synthetic weights: garbage, but comparable
    frames = np.random.default_rng(3).integers(0, 256, size=(2, 24, 32, 3), dtype=np.uint8)
    got = detect_batch(det, frames, batch_size=1)
    with torch.no_grad():
        want = [det.detect_faces(f, 0.97) for f in frames]
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_synthetic_detector_garbage_does_not_crash(face_models, weights_dir):
    models = tiny_models(face_models, face_models.detector)
    runner = GfpganRunner(GfpganConfig(weights_dir=weights_dir, max_faces=2, batch_size=1), models)
    rgb = np.random.default_rng(4).integers(0, 256, size=(1, 24, 24, 3), dtype=np.uint8)
    out = runner.restore(rgb, RestoreParams(upscale=2, only_center_face=True))
    assert out.frames.shape == (1, 48, 48, 3) and out.faces[0] <= 1


def test_runner_shapes_and_faces_only_rules(face_models, weights_dir):
    frames, dets = make_frames(1, 64, seed=2, faces_per_frame=2)
    models = tiny_models(face_models, InjectedDetector(frames, dets))
    runner = GfpganRunner(GfpganConfig(weights_dir=weights_dir, batch_size=2), models)
    rgb = np.ascontiguousarray(frames[..., ::-1])
    out = runner.restore(rgb, RestoreParams(output_size=32))
    assert out.frames.shape == (1, 32, 32, 3) and out.faces == [2]
    with pytest.raises(InvalidInput, match="exactly one face"):
        runner.restore(rgb, RestoreParams(upscale=1, paste_back=False))
    faces = runner.restore(rgb, RestoreParams(upscale=1, paste_back=False, only_center_face=True))
    assert faces.frames.shape == (1, 512, 512, 3)
    with pytest.raises(InvalidInput, match="uint8"):
        runner.restore(rgb.astype(np.float32), RestoreParams())
    with pytest.raises(InvalidInput, match="context"):
        runner.restore(rgb, RestoreParams(), context=(1, 0))
