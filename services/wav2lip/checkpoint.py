"""Build our nets from official checkpoint files, strictly (every key, every shape).

- Wav2Lip: `wav2lip.pth` / `wav2lip_gan.pth` as published (`{'state_dict': {'module.…': …},
  'optimizer', 'global_step', 'global_epoch'}`), a bare state dict, or a TorchScript export of the
  generator (as some current download links serve) — all read by
  `lihq.weights.loaders.load_wav2lip_checkpoint`, which strips `module.` in one place.
- S3FD: `s3fd-619a316812.pth` (`s3fd.pth`), a plain state dict of 65 tensors.

Key or shape mismatches -> WrongCheckpoint (FAILED_PRECONDITION) listing them; unreadable files ->
CorruptCheckpoint; absent files -> WeightsMissing (`lihq.weights.load.load_weights`, the one strict
loader). Nets come back in eval mode on the CPU.
"""

from __future__ import annotations

from pathlib import Path

from lihq.weights.load import load_weights, strip_dataparallel
from lihq.weights.loaders import load_wav2lip_checkpoint
from services.wav2lip.nets.s3fd import S3FD
from services.wav2lip.nets.wav2lip import Wav2Lip


def load_wav2lip(path: str | Path) -> Wav2Lip:
    """A Wav2Lip generator with the weights of `path` (official training checkpoint or TorchScript)."""
    sd = load_wav2lip_checkpoint(
        path
    )  # the container: {'state_dict': …}, bare, or TorchScript; `module.` gone
    return load_weights(Wav2Lip(), sd, what=f"{path} (as a Wav2Lip generator)").eval()


def load_s3fd(path: str | Path) -> S3FD:
    """The S3FD detector with the weights of `path` (a plain state dict, `module.` tolerated)."""
    what = f"{path} (as the S3FD face detector)"
    return load_weights(S3FD(), path, filter_fn=strip_dataparallel, what=what).eval()
