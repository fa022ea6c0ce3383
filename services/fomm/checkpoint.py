"""Build the FOMM nets and fill them from an official `vox-cpk.pth.tar` / `vox-adv-cpk.pth.tar`.

The file is read by `lihq.weights.loaders.load_fomm_checkpoint` (weights-only unpickling of the
legacy non-zip pickle; `generator` + `kp_detector` kept, discriminator and optimizer states
dropped; nn.DataParallel's `module.` prefix removed there, the one remapping we accept). Loading is
strict: the key sets and every shape must equal our modules' (which carry the official key names),
else WrongCheckpoint listing the differences.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lihq.weights import check_against_manifest, load_fomm_checkpoint
from services.fomm.nets import VOX_256, FommConfig, KPDetector, OcclusionAwareGenerator


def build_nets(
    arch: FommConfig = VOX_256, align_corners: bool = False
) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """Uninitialised nets (random init) of the given architecture, in eval mode."""
    return KPDetector(arch.kp_detector).eval(), OcclusionAwareGenerator(arch.generator, align_corners).eval()


def build_generator(arch: FommConfig = VOX_256) -> OcclusionAwareGenerator:
    """The vox-256 generator (the `generator` part of vox-cpk), untrained; for synthetic weights."""
    return OcclusionAwareGenerator(arch.generator)


def build_kp_detector(arch: FommConfig = VOX_256) -> KPDetector:
    """The vox-256 keypoint detector (the `kp_detector` part of vox-cpk), untrained."""
    return KPDetector(arch.kp_detector)


def expected_shapes(net: nn.Module) -> dict[str, list[int]]:
    """{state-dict key: shape} of a module: what a checkpoint must hold for it."""
    return {k: list(v.shape) for k, v in net.state_dict().items()}


def fill(net: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Strict load: same keys, same shapes (WrongCheckpoint otherwise), dtypes cast to the module's."""
    check_against_manifest(sd, expected_shapes(net), what=what, strip=None)
    net.load_state_dict(sd, strict=True)


def load_nets(
    path: str | Path, arch: FommConfig = VOX_256, align_corners: bool = False
) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """(kp_detector, generator) in eval mode on CPU, filled from the checkpoint at `path`.

    Raises WeightsMissing (no file), CorruptCheckpoint (unreadable), WrongCheckpoint (another model,
    another FOMM config, missing / unexpected keys or shapes), all FAILED_PRECONDITION.
    """
    parts = load_fomm_checkpoint(path)
    kp, gen = build_nets(arch, align_corners)
    fill(kp, parts["kp_detector"], f"{path} [kp_detector]")
    fill(gen, parts["generator"], f"{path} [generator]")
    return kp, gen
