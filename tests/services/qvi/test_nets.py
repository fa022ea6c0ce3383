"""Nets alone: key layout vs the official manifests, the components against direct definitions, and
flow reuse (synthesizing from precomputed flows equals upstream's one-shot forward)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from services.qvi.checkpoint import load_pwcnet, load_qvi
from services.qvi.nets import QVI, Flows, PWCNet, backwarp, correlation, forward_splat, reverse_flow
from services.qvi.nets.qvi import as_time, quadratic_flows
from services.qvi.runner import needed_flows
from tests.reference import needs, ref_path

MANIFESTS = ref_path("qvi", "manifests")


def _shapes(name: str, strip: str = "") -> dict[str, list[int]]:
    data = json.loads((MANIFESTS / name).read_text())
    return {k[len(strip) :] if k.startswith(strip) else k: v for k, v in data.items()}


@needs("qvi/manifests/qvi_model_state_dict.json", "qvi/manifests/pwc_checkpoint.json")
def test_state_dict_keys_equal_the_official_layouts():
    ours = {k: list(v.shape) for k, v in QVI().state_dict().items()}
    assert ours == _shapes("qvi_model_state_dict.json", "module.")
    pwc = {k: list(v.shape) for k, v in PWCNet().state_dict().items()}
    assert pwc == _shapes("pwc_checkpoint.json")


def test_official_layout_files_load_strictly(qvi_weights, tmp_path):
    model = load_qvi(qvi_weights / "qvi" / "model.pt")
    pwc = load_pwcnet(qvi_weights / "qvi" / "pwc-checkpoint.pt")
    assert not model.training and not pwc.training
    raw = torch.load(qvi_weights / "qvi" / "model.pt", weights_only=False)
    assert all(k.startswith("module.") for k in raw["model_state_dict"])  # the file keeps the prefix
    key = "module.masknet.conv3.bias"
    assert torch.equal(model.masknet.conv3.bias, raw["model_state_dict"][key])
    del raw["model_state_dict"][key]
    torch.save(raw, tmp_path / "model.pt")
    from lihq.weights.loaders import WrongCheckpoint

    with pytest.raises(WrongCheckpoint, match="masknet.conv3.bias"):
        load_qvi(tmp_path / "model.pt")


def test_correlation_matches_its_definition():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 5, 7, 9, generator=g), torch.randn(2, 5, 7, 9, generator=g)
    out = correlation(a, b)
    assert out.shape == (2, 81, 7, 9)
    for dy in (-4, -1, 0, 3):
        for dx in (-4, 0, 2, 4):
            ch = (dy + 4) * 9 + (dx + 4)
            for y, x in ((0, 0), (3, 4), (6, 8)):
                yy, xx = y + dy, x + dx
                inside = 0 <= yy < 7 and 0 <= xx < 9
                want = (a[:, :, y, x] * b[:, :, yy, xx]).mean(1) if inside else torch.zeros(2)
                torch.testing.assert_close(out[:, ch, y, x], want, atol=1e-6, rtol=0)


def test_forward_splat_spreads_a_pixel_over_four_gaussian_corners():
    img = torch.zeros(1, 2, 6, 8)
    img[0, :, 2, 3] = torch.tensor([5.0, -2.0])
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 2.25  # x: 2 px right + 0.25
    flow[:, 1] = -0.5  # y: floor -1, fraction 0.5
    summed, weight = forward_splat(img, flow)
    for a in (0, 1):
        for b in (0, 1):
            w = math.exp(-((0.5 - a) ** 2 + (0.25 - b) ** 2))
            y, x = 2 - 1 + a, 3 + 2 + b
            torch.testing.assert_close(summed[0, :, y, x], torch.tensor([5.0 * w, -2.0 * w]))
    assert int((summed[0, 0] != 0).sum()) == 4
    # every source pixel adds the same 4 weights; the last column shifts out of the image
    full = sum(math.exp(-((0.5 - a) ** 2 + (0.25 - b) ** 2)) for a in (0, 1) for b in (0, 1))
    assert float(weight.sum()) < 6 * 8 * full
    assert float(weight[0, 0, 2, 4]) == pytest.approx(full, rel=1e-6)  # interior: all 4 sources land


def test_reverse_flow_of_a_constant_flow_is_its_negation_where_hit():
    flow = torch.full((1, 2, 8, 8), 1.0)
    rev, norm = reverse_flow(flow)
    hit = norm[0, 0] > 0
    assert torch.allclose(rev[0, :, hit], torch.full_like(rev[0, :, hit], -1.0))
    assert torch.equal(rev[0, :, ~hit], torch.zeros_like(rev[0, :, ~hit]))


def test_backwarp_zero_flow_is_upstreams_half_pixel_sampling():
    img = torch.rand(1, 3, 8, 10)
    out = backwarp(img, torch.zeros(1, 2, 8, 10))
    # upstream normalises p/size, not (p + 0.5)/size: zero flow samples half a pixel up-left
    assert not torch.allclose(out, img)
    assert torch.allclose(
        out[:, :, 1:, 1:],
        (img[:, :, 1:, 1:] + img[:, :, :-1, 1:] + img[:, :, 1:, :-1] + img[:, :, :-1, :-1]) / 4,
        atol=1e-6,
    )


def test_quadratic_and_linear_motion():
    f10, f12 = torch.full((1, 2, 4, 4), -1.0), torch.full((1, 2, 4, 4), 1.0)
    t = as_time(0.5, 1, torch.device("cpu"))
    quad, _ = quadratic_flows(Flows(f10, f12, -f12, -f10), t)
    lin, _ = quadratic_flows(Flows(None, f12, -f12, None), t)
    assert torch.allclose(quad, 0.5 * f12) and torch.allclose(lin, 0.5 * f12)  # constant velocity
    accel, _ = quadratic_flows(Flows(torch.zeros_like(f10), f12, -f12, torch.zeros_like(f10)), t)
    assert torch.allclose(accel, 0.375 * f12)  # at rest at I0: 0.5 * (t + t^2) = 0.375


@pytest.fixture(scope="module")
def seed1_model(qvi_weights):
    return load_qvi(qvi_weights / "qvi" / "model.pt")


@torch.inference_mode()
def test_flow_reuse_equals_the_one_shot_forward(seed1_model):
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(1, 3, 32, 48, generator=g) - 0.4 for _ in range(4)]
    flows = seed1_model.estimate_flows(*frames)
    torch.testing.assert_close(flows.f12, seed1_model.flownet(frames[1], frames[2]), atol=1e-5, rtol=0)
    batched = seed1_model.synthesize(
        torch.cat([frames[1]] * 2), torch.cat([frames[2]] * 2),
        Flows(*(torch.cat([f] * 2) for f in (flows.f10, flows.f12, flows.f21, flows.f23))),
        torch.tensor([0.25, 0.75], dtype=torch.float64),
    )  # fmt: skip
    for i, t in enumerate((0.25, 0.75)):
        one_shot = seed1_model(*frames, t)
        torch.testing.assert_close(batched[i : i + 1], one_shot, atol=1e-5, rtol=0)


def test_needed_flows_share_neighbours():
    # 6 frames, pairs 0..4: each directed neighbour flow once = 2 * 5, not 4 per pair
    assert len(needed_flows(range(5), 6)) == 10
    assert set(needed_flows([2], 6)) == {(2, 3), (3, 2), (2, 1), (3, 4)}
    assert set(needed_flows([0], 6)) == {(0, 1), (1, 0)}  # first pair: linear
