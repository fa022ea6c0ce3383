"""Shared fixtures: synthetic weights (seed 1) in the official layouts, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from lihq.config import shared_reference_dir
from lihq.weights import synthesize

REF = shared_reference_dir()
W2L_VECTORS = REF / "wav2lip" / "vectors"
S3FD_VECTORS = REF / "s3fd" / "vectors"
needs_reference = pytest.mark.skipif(
    not (REF / "fill_weights.py").is_file() or not W2L_VECTORS.is_dir(), reason="shared/reference not present"
)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LIHQ_WEIGHTS_DIR holding synthetic `wav2lip_gan` and `s3fd` (not `wav2lip`: tests use its
    absence for the missing-weights path)."""
    root = tmp_path_factory.mktemp("weights")
    synthesize("wav2lip_gan", 1, root)
    synthesize("s3fd", 1, root)
    return root


@pytest.fixture(scope="session")
def wav2lip_file(weights_dir: Path) -> Path:
    return weights_dir / "wav2lip" / "wav2lip_gan.pth"


@pytest.fixture(scope="session")
def s3fd_file(weights_dir: Path) -> Path:
    return weights_dir / "s3fd" / "s3fd.pth"
