"""The one strict loader: a checkpoint (file or already-read state dict) into a module, every key and
every shape checked. Every stage's loader file (services/<model>/checkpoint.py and the like) is its
model's key filter plus one call to `load_weights`.

    load_weights(module, path_or_state_dict, key=None, filter_fn=None, what=None) -> module

1. A path is read by `lihq.weights.loaders.load_state_dict` (weights-only unpickling; a TorchScript
   archive reduced to its state dict; `key` picks a sub-dict such as BasicSR's `params_ema`), keys
   exactly as stored. A mapping is taken as it is (for containers a model reads itself first, e.g.
   FOMM's `generator` / `kp_detector` parts or Wav2Lip's `state_dict` wrapper).
2. `filter_fn` (the model's `checkpoint_filter_fn`) maps a foreign layout onto the module's keys:
   nn.DataParallel's `module.` (`strip_dataparallel`), buffers old library versions saved, a
   compiler's key prefix. It is the only place a layout is remapped, and may itself refuse a file
   (WrongCheckpoint).
3. The keys and shapes must equal the module's own state dict, else WrongCheckpoint
   (FAILED_PRECONDITION) naming the file, the missing / unexpected keys and the shape mismatches.
4. `module.load_state_dict(..., strict=True)` (values cast to the module's dtypes). The module's
   train/eval mode and device are left as they were.

Absent files are WeightsMissing and unreadable ones CorruptCheckpoint, as in `lihq.weights.loaders`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from lihq.weights.loaders import check_against_manifest, load_state_dict, remove_prefix

StateDict = dict[str, torch.Tensor]
FilterFn = Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]
M = TypeVar("M", bound=nn.Module)


def shapes(module: nn.Module) -> dict[str, list[int]]:
    """{state-dict key: shape} of a module: what a checkpoint must hold for it."""
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def strip_dataparallel(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """The commonest key filter: drop nn.DataParallel's `module.` prefix where a key has it."""
    return remove_prefix(sd, "module.")


def load_weights(
    module: M,
    source: str | Path | Mapping[str, torch.Tensor],
    *,
    key: str | None = None,
    filter_fn: FilterFn | None = None,
    what: str | None = None,
) -> M:
    """Fill `module` from `source` strictly (module docstring); returns the module.

    `what` names the checkpoint in errors (default: the path, or "checkpoint").
    """
    if isinstance(source, (str, Path)):
        sd: Mapping[str, torch.Tensor] = load_state_dict(source, key=key, strip_prefix=None)
        what = what or str(source)
    else:
        if key is not None:
            raise TypeError("load_weights: `key` applies to a checkpoint file, not to a state dict")
        sd = source
    if filter_fn is not None:
        sd = filter_fn(sd)
    check_against_manifest(sd, shapes(module), what=what or "checkpoint", strip=None)
    module.load_state_dict(dict(sd), strict=True)
    return module
