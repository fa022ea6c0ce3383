"""The FOMM nets: official key sets / shapes (golden, against the manifests), shapes, blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lihq.weights.fill import gaussian_kernel
from services.fomm.nets import VOX_256, Keypoints, KPDetector, OcclusionAwareGenerator, tiny
from services.fomm.nets.blocks import AntiAliasInterpolation2d, coordinate_grid, keypoint_heatmaps
from tests.reference import needs, ref_path

MANIFESTS = ref_path("fomm", "manifests")


@needs("fomm/manifests/kp_detector.json", "fomm/manifests/generator.dtypes.json")
@pytest.mark.parametrize(
    "name, build", [("kp_detector", lambda: KPDetector()), ("generator", lambda: OcclusionAwareGenerator())]
)
def test_state_dict_keys_and_shapes_equal_official_manifest(name, build):
    manifest = json.loads((MANIFESTS / f"{name}.json").read_text())
    ours = {k: list(v.shape) for k, v in build().state_dict().items()}
    assert ours == manifest
    dtypes = json.loads((MANIFESTS / f"{name}.dtypes.json").read_text())
    sd = build().state_dict()
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items()} == dtypes


def test_vox_config_values():
    kp, g = VOX_256.kp_detector, VOX_256.generator
    assert (kp.num_kp, kp.block_expansion, kp.max_features, kp.num_blocks, kp.scale_factor) == (
        10,
        32,
        1024,
        5,
        0.25,
    )
    assert (kp.temperature, kp.estimate_jacobian, kp.pad) == (0.1, True, 0)
    assert (g.block_expansion, g.max_features, g.num_down_blocks, g.num_bottleneck_blocks) == (64, 512, 2, 6)
    dm = g.dense_motion
    assert (dm.block_expansion, dm.max_features, dm.num_blocks, dm.scale_factor) == (64, 1024, 5, 0.25)
    assert g.estimate_occlusion_map and dm.kp_variance == 0.01


def test_antialias_kernel_matches_the_synthetic_fill_gaussian():
    ours = AntiAliasInterpolation2d(3, 0.25).weight
    ref = gaussian_kernel(3, 13)  # what synthetic checkpoints store for this buffer
    assert ours.shape == (3, 1, 13, 13) and torch.allclose(ours, ref, atol=1e-8, rtol=0)


def test_antialias_downsamples_by_four_and_keeps_constants():
    down = AntiAliasInterpolation2d(3, 0.25)
    x = torch.full((2, 3, 64, 64), 0.5)
    y = down(x)
    assert y.shape == (2, 3, 16, 16)
    assert torch.allclose(y[:, :, 4:-4, 4:-4], torch.full_like(y[:, :, 4:-4, 4:-4], 0.5), atol=1e-6)


def test_coordinate_grid_spans_minus_one_to_one_xy_order():
    g = coordinate_grid(3, 5, torch.float32)
    assert g.shape == (3, 5, 2)
    assert g[0, 0].tolist() == [-1, -1] and g[-1, -1].tolist() == [1, 1]
    assert g[0, 4].tolist() == [1, -1]  # x varies along the width


def test_heatmap_peaks_at_the_keypoint():
    kp = torch.tensor([[[0.0, 0.0], [1.0, -1.0]]])
    h = keypoint_heatmaps(kp, 5, 5, 0.01)
    assert h.shape == (1, 2, 5, 5)
    assert h[0, 0, 2, 2] == 1 and h[0, 1, 0, 4] == 1


def test_tiny_nets_shapes_and_ranges():
    cfg = tiny(num_kp=4)
    kp_net, gen = KPDetector(cfg.kp_detector).eval(), OcclusionAwareGenerator(cfg.generator).eval()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        kp = kp_net(x)
        assert kp.value.shape == (3, 4, 2) and kp.jacobian.shape == (3, 4, 2, 2)
        assert kp.value.abs().max() <= 1
        out = gen(x[:1], kp, Keypoints(kp.value[:1], kp.jacobian[:1]))
    assert out.prediction.shape == (3, 3, 64, 64)
    assert 0 < out.prediction.min() and out.prediction.max() < 1
    m = out.motion
    assert m.mask.shape == (3, 5, 16, 16) and torch.allclose(m.mask.sum(1), torch.ones(3, 16, 16), atol=1e-5)
    assert m.deformation.shape == (3, 16, 16, 2) and m.occlusion_map.shape == (3, 1, 16, 16)
    assert m.sparse_deformed.shape == (3, 5, 3, 16, 16) and out.deformed.shape == (3, 3, 64, 64)


def test_identity_motion_leaves_the_sparse_warp_at_identity():
    """Driving keypoints equal to the source's: every local motion is the identity grid."""
    cfg = tiny(num_kp=4)
    net = OcclusionAwareGenerator(cfg.generator).dense_motion_network
    kp = Keypoints(torch.rand(1, 4, 2) - 0.5, torch.eye(2).expand(1, 4, 2, 2) * 1.3)
    motions = net.sparse_motions(8, 8, kp, kp)
    grid = coordinate_grid(8, 8, torch.float32)
    assert torch.allclose(motions, grid.expand(1, 5, 8, 8, 2), atol=1e-6)


def test_align_corners_option_changes_the_warp():
    cfg = tiny()
    torch.manual_seed(0)
    a = OcclusionAwareGenerator(cfg.generator, align_corners=False).eval()
    b = OcclusionAwareGenerator(cfg.generator, align_corners=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 64, 64)
    kp = Keypoints(torch.rand(1, 4, 2) - 0.5, torch.eye(2).expand(1, 4, 2, 2).clone())
    with torch.no_grad():
        pa, pb = a(x, kp, kp).prediction, b(x, kp, kp).prediction
    assert not torch.equal(pa, pb)
    assert np.isfinite(pb.numpy()).all()
