"""Loading QVI's official checkpoints into our modules, strictly.

`model.pt` is {'model_state_dict': nn.DataParallel(QVI) state dict ('module.' keys), + training
metadata}; it holds the PWC-Net weights too (`module.flownet.*`). `pwc-checkpoint.pt` is a bare
PWC-Net state dict that upstream loads before overwriting it with model.pt's; inference does not
need it, but `load_pwcnet` reads it (strictly) for checks.
"""

from __future__ import annotations

from pathlib import Path

from lihq.weights.load import load_weights, strip_dataparallel
from services.qvi.nets import QVI, PWCNet

# The one remapping between the official files and our modules: drop nn.DataParallel's `module.`.
checkpoint_filter_fn = strip_dataparallel


def load_qvi(path: str | Path) -> QVI:
    """QVI (in eval mode, on CPU, float32) with the weights of an official-layout `model.pt`.

    WeightsMissing / CorruptCheckpoint / WrongCheckpoint (all FAILED_PRECONDITION) as in
    `lihq.weights.loaders`, naming the file and the `lihq weights` command that fixes it.
    """
    return load_weights(QVI(), path, key="model_state_dict", filter_fn=checkpoint_filter_fn).eval()


def load_pwcnet(path: str | Path) -> PWCNet:
    """PWC-Net (eval, CPU) from the official `pwc-checkpoint.pt` (a bare state dict)."""
    return load_weights(PWCNet(), path, filter_fn=checkpoint_filter_fn).eval()
