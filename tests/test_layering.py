"""The import direction of the tree (docs/layers/README.md): lihq_cli (CLI, web page, operator tools)
-> orchestrator -> lihq (core) and services -> lihq. The core imports nothing above it, the stages
import neither the orchestrator nor the CLI, and the orchestrator reaches the stages only over gRPC.
Every import statement counts, function-level ones too (they hid a cycle before)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> the top-level packages of this repository it must never import
FORBIDDEN = {
    "lihq": {"orchestrator", "services", "lihq_cli"},
    "services": {"orchestrator", "lihq_cli"},
    "orchestrator": {"services", "lihq_cli"},
}
OURS = {"lihq", "services", "orchestrator", "lihq_cli"}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in `path` that names one of ours."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in OURS]
    return out


def sources(package: str) -> list[Path]:
    return [p for p in sorted((ROOT / package).rglob("*.py")) if "v1" not in p.relative_to(ROOT).parts[:2]]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up_or_across(package):
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {top}"
        for p in sources(package)
        for line, top in imported_packages(p)
        if top in FORBIDDEN[package]
    ]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_the_scan_sees_function_level_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from orchestrator.core import Orchestrator\n    import services.media\n")
    assert imported_packages(f) == [(2, "orchestrator"), (3, "services")]
