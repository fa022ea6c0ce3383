"""GFPGAN checkpoints are checked against the module they load into, never against a manifest."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from lihq.weights.fill import fill_state_dict
from lihq.weights.loaders import WrongCheckpoint
from services.gfpgan import checkpoint as models

TINY = {"narrow": 0.0625, "channel_multiplier": 1, "num_style_feat": 64, "num_mlp": 2}


@pytest.fixture()
def tiny_arch(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_restorer builds the narrow GFPGANv1Clean (same code path, 1/16 of the width)."""
    monkeypatch.setattr(models, "build_restorer", functools.partial(models.build_restorer, **TINY))
    monkeypatch.setenv("LIHQ_REFERENCE_DIR", "/nonexistent")  # nothing outside the file may be needed


def _save(path: Path, sd: dict[str, torch.Tensor]) -> Path:
    torch.save({"params_ema": sd}, path)
    return path


def test_official_layout_loads_strictly(tiny_arch: None, tmp_path: Path) -> None:
    sd = fill_state_dict(models.build_restorer().state_dict(), 2)
    net = models.load_restorer(_save(tmp_path / "GFPGANv1.4.pth", sd), torch.device("cpu"))
    assert not net.training and torch.equal(
        net.state_dict()["final_linear.weight"], sd["final_linear.weight"]
    )


def test_mismatch_names_the_keys(tiny_arch: None, tmp_path: Path) -> None:
    sd = fill_state_dict(models.build_restorer().state_dict(), 2)
    del sd["final_linear.bias"]
    sd["toRGB.0.bias"] = torch.zeros(4)
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(WrongCheckpoint) as err:
        models.load_restorer(_save(tmp_path / "GFPGANv1.4.pth", sd), torch.device("cpu"))
    msg = str(err.value)
    assert err.value.code == "FAILED_PRECONDITION" and "GFPGANv1Clean" in msg
    assert "missing keys: final_linear.bias" in msg and "unexpected keys: extra.weight" in msg
    assert "toRGB.0.bias [4] != [3]" in msg


def test_facexlib_builders_match_facexlib_init() -> None:
    det, parser = models.build_detector(), models.build_parser()
    assert type(det).__name__ == "RetinaFace" and type(parser).__name__ == "ParseNet"
    assert any(k.startswith("body.") for k in det.state_dict())
