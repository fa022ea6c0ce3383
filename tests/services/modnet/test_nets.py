"""MODNet nets + checkpoint loading: key layout, the tied backbone, strictness, per-frame independence."""

from __future__ import annotations

import pytest
import torch

from lihq.errors import WeightsMissing
from lihq.weights.loaders import WrongCheckpoint, load_state_dict
from services.modnet.checkpoint import build_modnet, checkpoint_filter, load_modnet
from services.modnet.nets import MODNet
from tests.reference import load_manifest, needs

MANIFEST = "modnet/manifests/modnet_photographic_portrait_matting.json"


@needs(MANIFEST)
def test_state_dict_is_the_official_layout_without_module_prefix():
    manifest = load_manifest(MANIFEST)
    ours = MODNet().state_dict()
    want = [k.removeprefix("module.") for k in manifest]
    assert list(ours) == want  # same keys, same order (backbone listed twice)
    assert {k: list(v.shape) for k, v in ours.items()} == {
        k.removeprefix("module."): v for k, v in manifest.items()
    }


def test_backbone_is_one_module_under_two_names():
    net = MODNet()
    assert net.lr_branch.backbone is net.backbone
    w = net.state_dict()
    key = "backbone.model.features.0.0.weight"
    assert w[key].data_ptr() == w["lr_branch." + key].data_ptr()


def test_loads_the_official_layout_strictly(modnet_ckpt):
    raw = load_state_dict(modnet_ckpt, strip_prefix=None)
    assert all(k.startswith("module.") for k in raw)
    net = load_modnet(modnet_ckpt)
    assert not net.training
    got = net.state_dict()
    for key in ("backbone.model.features.17.conv.7.running_var", "f_branch.conv_f.1.layers.0.bias"):
        assert torch.equal(got[key], raw["module." + key])


def test_filter_strips_module_and_keeps_both_aliases(modnet_ckpt):
    raw = load_state_dict(modnet_ckpt, strip_prefix=None)
    out = checkpoint_filter(raw)
    assert len(out) == len(raw) == 751
    assert not any(k.startswith("module.") for k in out)
    assert "lr_branch.backbone.model.features.3.conv.4.bias" in out


def test_untied_backbone_aliases_are_refused(modnet_ckpt):
    raw = load_state_dict(modnet_ckpt, strip_prefix=None)
    key = "module.lr_branch.backbone.model.features.5.conv.1.weight"
    raw[key] = raw[key] + 1
    with pytest.raises(WrongCheckpoint, match="differ between backbone"):
        build_modnet(raw)


def test_missing_and_misshapen_keys_are_named(modnet_ckpt):
    raw = load_state_dict(modnet_ckpt, strip_prefix=None)
    del raw["module.hr_branch.conv_hr.0.layers.0.bias"]
    raw["module.f_branch.conv_f2x.layers.0.bias"] = torch.zeros(7)
    with pytest.raises(WrongCheckpoint) as ei:
        build_modnet(raw)
    assert "hr_branch.conv_hr.0.layers.0.bias" in str(ei.value)
    assert "f_branch.conv_f2x.layers.0.bias [7] != [32]" in str(ei.value)


def test_missing_file_says_how_to_fetch(tmp_path):
    with pytest.raises(WeightsMissing, match="lihq weights"):
        load_modnet(tmp_path / "modnet_photographic_portrait_matting.ckpt")


def test_forward_shapes_and_batch_independence(modnet_ckpt):
    net = load_modnet(modnet_ckpt)
    x = torch.rand(3, 3, 64, 96) * 2 - 1
    with torch.inference_mode():
        sem, det, matte = net(x, inference=False)
        none_sem, none_det, matte_infer = net(x, inference=True)
        alone = net(x[1:2], inference=True)[2]
    assert sem.shape == (3, 1, 4, 6) and det.shape == (3, 1, 64, 96) and matte.shape == (3, 1, 64, 96)
    assert none_sem is None and none_det is None
    assert torch.equal(matte, matte_infer)  # the auxiliary heads do not change the matte
    assert float(matte.min()) >= 0 and float(matte.max()) <= 1
    assert torch.allclose(alone, matte_infer[1:2], atol=1e-5)  # InstanceNorm: per-frame statistics
