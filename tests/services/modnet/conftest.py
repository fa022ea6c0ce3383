"""Shared fixtures of the MODNet tests: one synthetic checkpoint per session (seed 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lihq.weights import synthesize

SEED = 3


@pytest.fixture(scope="session")
def modnet_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic modnet_photographic_portrait_matting.ckpt in the official layout (seed 3)."""
    return synthesize("modnet", SEED, tmp_path_factory.mktemp("weights"))[0]
