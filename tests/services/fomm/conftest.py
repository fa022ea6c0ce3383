"""Shared FOMM fixtures: one synthetic official-layout checkpoint per session, the public vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lihq.weights import synthesize
from services.fomm.checkpoint import build_nets
from services.fomm.nets import FommConfig, tiny
from tests.reference import ref_path, require, synthesize_reference

VECTORS = ref_path("fomm", "vectors")


@pytest.fixture(scope="session")
def fomm_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LIHQ_WEIGHTS_DIR holding `fomm/vox-cpk.pth.tar` synthesized from seed 1 (vox-adv absent)."""
    root = tmp_path_factory.mktemp("fomm-weights")
    synthesize("fomm", 1, root)
    return root


@pytest.fixture(scope="session")
def vox_path(fomm_weights_dir: Path) -> Path:
    return fomm_weights_dir / "fomm" / "vox-cpk.pth.tar"


@pytest.fixture(scope="session")
def vox_ref_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vox-cpk filled by the vector set's own rule (seed 1), for comparisons with its outputs."""
    return synthesize_reference("fomm", 1, tmp_path_factory.mktemp("fomm-ref-weights"), "fomm/vectors")[0]


@pytest.fixture(scope="session")
def vectors() -> dict[str, np.ndarray]:
    """The public vector inputs: source_u8 (256,256,3), driving_u8 (4,256,256,3)."""
    require("fomm/vectors/inputs.npz")
    with np.load(VECTORS / "inputs.npz") as z:
        return {k: z[k] for k in z.files}


def save_tiny_checkpoint(path: Path, cfg: FommConfig, seed: int = 0) -> Path:
    """A FOMM-layout legacy pickle for a tiny config (random init), for fast runner tests."""
    torch.manual_seed(seed)
    kp, gen = build_nets(cfg)
    with torch.no_grad():  # BatchNorm running stats away from the identity, so eval mode matters
        for m in [*kp.modules(), *gen.modules()]:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    cpk = {"generator": gen.state_dict(), "kp_detector": kp.state_dict(), "discriminator": {}, "epoch": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cpk, path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="session")
def tiny_cfg() -> FommConfig:
    return tiny()


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory, tiny_cfg: FommConfig) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("fomm-tiny") / "tiny-cpk.pth.tar", tiny_cfg)
