"""Build our nets from official checkpoint files, strictly (every key, every shape).

- Wav2Lip: `wav2lip.pth` / `wav2lip_gan.pth` as published (`{'state_dict': {'module.…': …},
  'optimizer', 'global_step', 'global_epoch'}`), a bare state dict, or a TorchScript export of the
  generator (as some current download links serve) — all read by
  `lihq.weights.loaders.load_wav2lip_checkpoint`, which strips `module.` in one place.
- S3FD: `s3fd-619a316812.pth` (`s3fd.pth`), a plain state dict of 65 tensors.

Key or shape mismatches -> WrongCheckpoint (FAILED_PRECONDITION) listing them; unreadable files ->
CorruptCheckpoint; absent files -> WeightsMissing. Nets come back in eval mode on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from lihq.weights.loaders import check_against_manifest, load_state_dict, load_wav2lip_checkpoint
from services.wav2lip.nets.s3fd import S3FD
from services.wav2lip.nets.wav2lip import Wav2Lip

M = TypeVar("M", bound=nn.Module)


def load_strict(module: M, sd: Mapping[str, torch.Tensor], what: str) -> M:
    """Load `sd` into `module` after checking keys and shapes against the module's own state dict."""
    own = {k: list(v.shape) for k, v in module.state_dict().items()}
    check_against_manifest(sd, own, what=what, strip=None)
    module.load_state_dict(dict(sd), strict=True)
    return module.eval()


def load_wav2lip(path: str | Path) -> Wav2Lip:
    """A Wav2Lip generator with the weights of `path` (official training checkpoint or TorchScript)."""
    sd = load_wav2lip_checkpoint(path)
    return load_strict(Wav2Lip(), sd, f"{path} (as a Wav2Lip generator)")


def load_s3fd(path: str | Path) -> S3FD:
    """The S3FD detector with the weights of `path` (a plain state dict, `module.` tolerated)."""
    sd = load_state_dict(path)
    return load_strict(S3FD(), sd, f"{path} (as the S3FD face detector)")
