"""Session fixtures for the GFPGAN tests.

- `weights_dir`: synthetic `facexlib` (seed 1) in the official layout, written once;
  `gfpgan_weights_dir`: the same dir with synthetic `gfpgan-1.4` (seed 1) added (350 MB, only when needed).
- `face_models`: the facexlib helper (real upstream loader: detector, parser, template), on CPU.
  Tests that swap nets work on copies (fakes.tiny_models).
- `official_models`: `face_models` with the official-shape GFPGAN v1.4 net loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lihq.weights import synthesize
from services.gfpgan.checkpoint import FaceModels, add_restorer, load_face_models


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gfpgan-weights")
    synthesize("facexlib", 1, root)
    return root


@pytest.fixture(scope="session")
def gfpgan_weights_dir(weights_dir: Path) -> Path:
    synthesize("gfpgan-1.4", 1, weights_dir)
    return weights_dir


@pytest.fixture(scope="session")
def face_models(weights_dir: Path) -> FaceModels:
    return load_face_models(weights_dir, torch.device("cpu"))


@pytest.fixture(scope="session")
def official_models(face_models: FaceModels, gfpgan_weights_dir: Path) -> FaceModels:
    add_restorer(face_models, gfpgan_weights_dir, "1.4")
    return face_models
