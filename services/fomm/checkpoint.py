"""Build the FOMM nets and fill them from an official `vox-cpk.pth.tar` / `vox-adv-cpk.pth.tar`.

The file is read by `lihq.weights.loaders.load_fomm_checkpoint` (weights-only unpickling of the
legacy non-zip pickle; `generator` + `kp_detector` kept, discriminator and optimizer states
dropped; nn.DataParallel's `module.` prefix removed there, the one remapping we accept). Loading is
strict: the key sets and every shape must equal our modules' (which carry the official key names),
else WrongCheckpoint listing the differences (`lihq.weights.load.load_weights`, the one strict loader).
"""

from __future__ import annotations

from pathlib import Path

from lihq.weights import load_fomm_checkpoint
from lihq.weights.load import load_weights
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


def load_nets(
    path: str | Path, arch: FommConfig = VOX_256, align_corners: bool = False
) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """(kp_detector, generator) in eval mode on CPU, filled from the checkpoint at `path`.

    Raises WeightsMissing (no file), CorruptCheckpoint (unreadable), WrongCheckpoint (another model,
    another FOMM config, missing / unexpected keys or shapes), all FAILED_PRECONDITION.
    """
    parts = load_fomm_checkpoint(path)
    kp, gen = build_nets(arch, align_corners)
    load_weights(kp, parts["kp_detector"], what=f"{path} [kp_detector]")
    load_weights(gen, parts["generator"], what=f"{path} [generator]")
    return kp, gen
