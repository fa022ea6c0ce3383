"""The image (docker/Dockerfile) carries every top-level package the project installs: the `lihq` entry
point (lihq_cli.main) and the pods' weights sync (`python -m lihq_cli.k8s.weights`) need lihq_cli."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_the_image_copies_every_installed_package():
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {
        p.name
        for p in REPO.iterdir()
        if p.is_dir()
        and (p / "__init__.py").exists()
        and any(fnmatch.fnmatchcase(p.name, g) for g in include["include"])
    }
    assert {"lihq", "lihq_cli", "services", "orchestrator"} <= packages
    copied = set(re.findall(r"^COPY (\S+) \./\1$", (REPO / "docker" / "Dockerfile").read_text(), re.M))
    assert packages <= copied, f"docker/Dockerfile does not COPY {sorted(packages - copied)}"
