"""Loading official-layout FOMM checkpoints strictly, and the errors a user can act on."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from lihq.errors import WeightsMissing
from lihq.weights.fill import fill_state_dict
from lihq.weights.loaders import CorruptCheckpoint, WrongCheckpoint
from services.fomm.checkpoint import build_generator, load_nets
from services.fomm.runner import FommRunner, FommRunnerConfig


def _official(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_synthetic_official_file_is_a_legacy_pickle_and_loads_exactly(vox_path):
    assert not zipfile.is_zipfile(vox_path)  # the 2019 release format
    kp, gen = load_nets(vox_path)
    want = fill_state_dict(build_generator().state_dict(), 1)  # LIHQ's rule over the module's keys
    got = gen.state_dict()
    assert set(got) == set(want)
    for k in ("final.weight", "dense_motion_network.down.weight", "bottleneck.r5.norm2.running_var"):
        assert torch.equal(got[k], want[k])
    assert not kp.training and not gen.training


def test_dataparallel_prefixes_are_stripped(tmp_path, vox_path):
    cpk = _official(vox_path)
    cpk["generator"] = {f"module.{k}": v for k, v in cpk["generator"].items()}
    path = tmp_path / "vox-cpk.pth.tar"
    torch.save(cpk, path, _use_new_zipfile_serialization=False)
    _, gen = load_nets(path)
    assert torch.equal(gen.state_dict()["final.bias"], cpk["generator"]["module.final.bias"])


def test_missing_key_is_named(tmp_path, vox_path):
    cpk = _official(vox_path)
    del cpk["kp_detector"]["jacobian.weight"]
    path = tmp_path / "vox-cpk.pth.tar"
    torch.save(cpk, path, _use_new_zipfile_serialization=False)
    with pytest.raises(WrongCheckpoint, match=r"kp_detector.*missing keys: jacobian.weight"):
        load_nets(path)


def test_other_fomm_config_is_a_shape_mismatch(tmp_path, vox_path):
    cpk = _official(vox_path)
    cpk["kp_detector"]["kp.weight"] = torch.zeros(15, 35, 7, 7)  # e.g. a 15-keypoint config
    path = tmp_path / "other-cpk.pth.tar"
    torch.save(cpk, path, _use_new_zipfile_serialization=False)
    with pytest.raises(WrongCheckpoint, match=r"kp.weight \[15, 35, 7, 7\] != \[10, 35, 7, 7\]"):
        load_nets(path)


def test_a_gfpgan_file_is_refused_as_not_fomm(tmp_path):
    path = tmp_path / "GFPGANv1.4.pth"
    torch.save({"params_ema": {"conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(WrongCheckpoint, match="expected a FOMM checkpoint.*BasicSR"):
        load_nets(path)


def test_truncated_file_is_corrupt(tmp_path, vox_path):
    path = tmp_path / "vox-cpk.pth.tar"
    path.write_bytes(vox_path.read_bytes()[:100_000])
    with pytest.raises(CorruptCheckpoint, match="lihq weights verify fomm"):
        load_nets(path)


def test_runner_names_the_fetch_command_when_weights_are_missing(tmp_path, fomm_weights_dir):
    runner = FommRunner(FommRunnerConfig(device="cpu"), weights=tmp_path)
    with pytest.raises(WeightsMissing, match="lihq weights fetch fomm"):
        runner.model("vox")
    runner = FommRunner(FommRunnerConfig(device="cpu"), weights=fomm_weights_dir)
    with pytest.raises(WeightsMissing, match="lihq weights fetch fomm-adv"):
        runner.model("vox-adv")


def test_runner_loads_once_with_the_model_id_of_the_file(fomm_weights_dir):
    runner = FommRunner(FommRunnerConfig(device="cpu"), weights=fomm_weights_dir)
    m = runner.model("")
    assert m is runner.model("vox") and m.model_id == "synthetic:1" and m.synthetic


def test_explicit_path_overrides_the_registry(tmp_path, vox_path):
    runner = FommRunner(FommRunnerConfig(device="cpu"), weights=tmp_path, paths={"vox-adv": vox_path})
    assert runner.model("vox-adv").path == vox_path
    bad = FommRunner(FommRunnerConfig(device="cpu"), weights=tmp_path, paths={"vox": tmp_path / "nope.tar"})
    with pytest.raises(Exception, match="does not exist"):
        bad.model("vox")
