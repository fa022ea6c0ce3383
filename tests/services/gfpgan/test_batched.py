"""The batched segment path against upstream's one-at-a-time GFPGANer.enhance.

Detections are injected (fakes.InjectedDetector): with synthetic weights RetinaFace finds nothing
meaningful. Both paths then share the same detector, nets and noise; everything after detection
(selection, alignment, restoration, parsing, mask, paste) is compared. Tiny nets (fakes.py) keep
this fast; the official-shape nets run in test_servicer.py and test_verify.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.gfpgan.batched import BatchSettings, FacePlan, restore_segment
from services.gfpgan.compat import upstream
from services.gfpgan.noise import NoiseSpec, NoisyRestorer
from services.gfpgan.reference import enhance_faces, enhance_frames
from services.gfpgan.tensors import parser_lut, restorer_lut, to_bgr_uint8, to_tensor
from tests.services.gfpgan.fakes import InjectedDetector, make_frames, tiny_models

CPU = torch.device("cpu")
ONE = BatchSettings(batch_size=1, paste_workers=1)


@pytest.fixture(scope="module")
def scene(face_models):
    """2 frames of 80x80 with one face each, 1 frame of 96x96 with two, tiny nets seeing them."""
    single, d1 = make_frames(2, 80, seed=0)
    double, d2 = make_frames(1, 96, seed=1, faces_per_frame=2)
    det = InjectedDetector(single, d1)
    det.add(double, d2)
    models = tiny_models(face_models, det)
    net = NoisyRestorer(models.restorers["1.4"], NoiseSpec("seeded", 11), CPU)
    return models, net, single, double


@pytest.fixture(scope="module")
def upstream_x2(scene):
    """GFPGANer.enhance(frame, paste_back=True) at upscale 2 for every frame of the scene."""
    models, net, single, double = scene
    return enhance_frames(models, net, single, 2), enhance_frames(models, net, double, 2)


def test_conversions_match_upstream_functions():
    up = upstream()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    want = up.img2tensor(img[1] / 255.0, bgr2rgb=True, float32=True)
    up.normalize(want, (0.5,) * 3, (0.5,) * 3, inplace=True)
    assert torch.equal(to_tensor(img, restorer_lut(), CPU)[1], want)
    want_p = up.facexlib_img2tensor(img[0].astype("float32") / 255.0, bgr2rgb=True, float32=True)
    up.normalize(want_p, (0.5,) * 3, (0.5,) * 3, inplace=True)
    assert torch.equal(to_tensor(img, parser_lut(), CPU)[0], want_p)
    out = torch.randn(2, 3, 16, 16) * 1.5
    for i in range(2):
        assert np.array_equal(to_bgr_uint8(out)[i], up.tensor2img(out[i], rgb2bgr=True, min_max=(-1, 1)))


def test_batch_of_one_is_byte_identical_to_gfpganer(scene, upstream_x2):
    models, net, single, double = scene
    for frames, ref in zip((single, double), upstream_x2, strict=True):
        out = restore_segment(models, net, frames, FacePlan(scale=2), ONE)
        assert out.faces == [len(models.detector.detect_faces(f)) for f in frames]
        for a, b in zip(out.frames, ref, strict=True):
            assert a.shape == b.shape == (frames.shape[1] * 2, frames.shape[2] * 2, 3)
            assert np.array_equal(a, b)


def test_larger_batches_differ_from_gfpganer_only_by_float_rounding(scene, upstream_x2):
    models, net, single, _ = scene
    out = restore_segment(
        models, net, single, FacePlan(scale=2), BatchSettings(batch_size=3, paste_workers=2)
    )
    for a, b in zip(out.frames, upstream_x2[0], strict=True):
        d = np.abs(a.astype(int) - b.astype(int))
        assert d.max() <= 2 and (d > 0).mean() < 0.01


def test_unit_scale_and_faces_only_match_gfpganer(scene):
    models, net, single, _ = scene
    out = restore_segment(models, net, single, FacePlan(scale=1), ONE)
    ref = enhance_frames(models, net, single, 1)
    assert all(
        np.array_equal(a, b) and a.shape == single.shape[1:] for a, b in zip(out.frames, ref, strict=True)
    )
    faces = restore_segment(models, net, single, FacePlan(scale=1, paste_back=False), ONE)
    ref_faces = enhance_faces(models, net, single)
    assert [len(f) for f in ref_faces] == faces.faces == [1, 1]
    assert all(np.array_equal(a, b[0]) for a, b in zip(faces.frames, ref_faces, strict=True))


def test_only_center_face_matches_gfpganer(scene):
    models, net, _, double = scene
    out = restore_segment(models, net, double, FacePlan(scale=2, only_center_face=True), ONE)
    ref = enhance_frames(models, net, double, 2, only_center_face=True)
    assert out.faces == [1]
    assert np.array_equal(out.frames[0], ref[0])


def test_context_frames_are_read_but_not_returned(scene, upstream_x2):
    models, net, single, _ = scene
    mid = restore_segment(models, net, single, FacePlan(scale=2), ONE, context=(1, 0))
    assert len(mid.frames) == 1 and mid.faces == [1]
    assert np.array_equal(mid.frames[0], upstream_x2[0][1])


def test_frame_without_faces_is_only_upscaled_like_upstream(scene):
    models, net, _, _ = scene
    blank = np.full((1, 40, 48, 3), 90, np.uint8)
    out = restore_segment(models, net, blank, FacePlan(scale=2), BatchSettings())
    ref = enhance_frames(models, net, blank, 2)
    assert out.faces == [0] and out.frames[0].shape == (80, 96, 3)
    assert np.array_equal(out.frames[0], ref[0])
