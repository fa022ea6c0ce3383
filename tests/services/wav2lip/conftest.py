"""Shared fixtures: synthetic weights (seed 1) in the official layouts, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from lihq.weights import synthesize
from tests.reference import needs, ref_path

W2L_VECTORS = ref_path("wav2lip", "vectors")
S3FD_VECTORS = ref_path("s3fd", "vectors")
# for tests that read the shared Wav2Lip vectors (the weights themselves need nothing outside the repo)
needs_reference = needs("wav2lip/vectors")
# for `lihq verify wav2lip / s3fd`: both sets and the fill rule they ship
needs_verify_sets = needs("wav2lip/vectors", "s3fd/vectors", "fill_weights.py")


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
