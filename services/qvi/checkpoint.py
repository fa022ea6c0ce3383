"""Loading QVI's official checkpoints into our modules, strictly.

`model.pt` is {'model_state_dict': nn.DataParallel(QVI) state dict ('module.' keys), + training
metadata}; it holds the PWC-Net weights too (`module.flownet.*`). `pwc-checkpoint.pt` is a bare
PWC-Net state dict that upstream loads before overwriting it with model.pt's; inference does not
need it, but `load_pwcnet` reads it (strictly) for checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from lihq.weights import loaders
from services.qvi.nets import QVI, PWCNet

_DATAPARALLEL = "module."


def checkpoint_filter_fn(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The one remapping between the official files and our modules: drop nn.DataParallel's `module.`."""
    return loaders.remove_prefix(state, _DATAPARALLEL)


def _load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    want = {k: list(v.shape) for k, v in model.state_dict().items()}
    loaders.check_against_manifest(state, want, what=str(path), strip=None)  # WrongCheckpoint on a miss
    model.load_state_dict(state, strict=True)


def load_qvi(path: str | Path) -> QVI:
    """QVI (in eval mode, on CPU, float32) with the weights of an official-layout `model.pt`.

    WeightsMissing / CorruptCheckpoint / WrongCheckpoint (all FAILED_PRECONDITION) as in
    `lihq.weights.loaders`, naming the file and the `lihq weights` command that fixes it.
    """
    path = Path(path)
    raw = loaders.load_state_dict(path, key="model_state_dict", strip_prefix=None)
    model = QVI()
    _load_strict(model, checkpoint_filter_fn(raw), path)
    return model.eval()


def load_pwcnet(path: str | Path) -> PWCNet:
    """PWC-Net (eval, CPU) from the official `pwc-checkpoint.pt` (a bare state dict)."""
    path = Path(path)
    raw = loaders.load_state_dict(path, strip_prefix=None)
    model = PWCNet()
    _load_strict(model, checkpoint_filter_fn(raw), path)
    return model.eval()
