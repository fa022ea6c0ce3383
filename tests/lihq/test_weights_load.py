"""The one strict loader (lihq/weights/load.py): what it accepts, what it refuses and how it says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from lihq.errors import WeightsMissing
from lihq.weights.load import load_weights, shapes, strip_dataparallel
from lihq.weights.loaders import CorruptCheckpoint, WrongCheckpoint

REPO = Path(__file__).resolve().parents[2]


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)


def _sd(**over: torch.Tensor) -> dict[str, torch.Tensor]:
    sd = {k: torch.full_like(v, 0.5) for k, v in Tiny().state_dict().items()}
    return {**sd, **over}


def test_a_matching_state_dict_loads_every_value():
    net = load_weights(Tiny(), _sd(), what="tiny")
    assert torch.equal(net.conv.weight, torch.full((4, 3, 3, 3), 0.5))
    assert shapes(net)["conv.weight"] == [4, 3, 3, 3]


def test_a_mismatch_names_missing_unexpected_and_misshaped_keys():
    sd = _sd(**{"conv.weight": torch.zeros(4, 3, 5, 5), "extra.weight": torch.zeros(1)})
    del sd["bn.running_var"]
    net = Tiny()
    before = net.conv.weight.clone()
    with pytest.raises(WrongCheckpoint) as ei:
        load_weights(net, sd, what="tiny.pth")
    msg = ei.value.message
    assert msg.startswith("tiny.pth does not match") and ei.value.code == "FAILED_PRECONDITION"
    assert "1 missing keys: bn.running_var" in msg and "1 unexpected keys: extra.weight" in msg
    assert "conv.weight [4, 3, 5, 5] != [4, 3, 3, 3]" in msg
    assert torch.equal(net.conv.weight, before)  # nothing half-loaded


def test_the_key_filter_maps_a_foreign_layout(tmp_path):
    path = tmp_path / "dp.pth"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in _sd().items()}}, path)
    with pytest.raises(WrongCheckpoint, match="missing keys"):
        load_weights(Tiny(), path, key="model_state_dict")  # keys are taken exactly as stored
    net = load_weights(Tiny(), path, key="model_state_dict", filter_fn=strip_dataparallel)
    assert torch.equal(net.bn.weight, torch.full((4,), 0.5))


def test_files_are_read_weights_only(tmp_path):
    with pytest.raises(WeightsMissing):
        load_weights(Tiny(), tmp_path / "absent.pth")
    evil = tmp_path / "evil.pth"
    torch.save({"state": _sd(), "obj": Tiny()}, evil)  # a pickled module: code, not weights
    with pytest.raises((WrongCheckpoint, CorruptCheckpoint), match="evil.pth"):
        load_weights(Tiny(), evil, key="state")
    with pytest.raises(TypeError, match="key"):
        load_weights(Tiny(), _sd(), key="params_ema")


def test_no_stage_loads_weights_on_its_own():
    """Every stage goes through load_weights: no other strict check or load_state_dict call."""
    pattern = re.compile(r"check_against_manifest\(|\.load_state_dict\(")
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for root in ("services", "lihq", "orchestrator")
        for p in sorted((REPO / root).rglob("*.py"))
        if "lihq/weights/" not in p.as_posix() and "lihq/v1/" not in p.as_posix()
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
