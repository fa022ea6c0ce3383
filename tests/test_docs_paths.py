"""Every repository path and module the docs name in backticks exists, so a rename that forgets the
docs fails here (docs/ and the per-layer pages docs/layers/)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").rglob("*.md"))
TOP = {p.name for p in REPO.iterdir() if not p.name.startswith(".")} | {"lihq"}
SOURCE_ENDINGS = (".py", ".proto", ".md", ".yaml", ".yml", ".toml", ".sh", ".jsonl")
_SPAN = re.compile(r"`([^`\s]+)`")
_MODULE = re.compile(r"^(lihq|services|orchestrator)(\.\w+)+$")


def _spans(doc: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)  # code blocks are commands, not names
    return _SPAN.findall(text)


def repo_paths(doc: Path) -> list[str]:
    """Backticked spans that are paths in this repository (not store keys such as `renders/<id>/…`)."""
    out = []
    for span in _spans(doc):
        path = re.sub(r":[\w-]+$", "", span)  # `module/file.py:attr`
        if "/" not in path or "://" in path:
            continue
        first = path.split("/", 1)[0]
        if first in TOP or (path.endswith(SOURCE_ENDINGS) and "<" not in first):
            out.append(path)
    return out


def exists(path: str) -> bool:
    pattern = re.sub(r"<[^>]*>", "*", path.rstrip("/"))  # `services/<model>/runner.py`: any model
    if "*" in pattern:
        return any(REPO.glob(pattern))
    return (REPO / pattern).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_paths_in_backticks_exist(doc):
    missing = [p for p in repo_paths(doc) if not exists(p)]
    assert not missing, f"{doc.relative_to(REPO)} names paths that do not exist: {missing}"


def _module_names(path: Path) -> set[str]:
    """Top-level names a module defines (classes, functions, assignments, imports), read without importing."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def resolves(dotted: str) -> bool:
    """`lihq.weights.load` (a module or package) or `lihq.grpc.errors.error_from_rpc` (+ one name in it)."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:n])
        for module in (base.with_suffix(".py"), base / "__init__.py"):
            if module.is_file():
                rest = parts[n:]
                return not rest or (len(rest) <= 2 and rest[0] in _module_names(module))
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_in_backticks_exist(doc):
    dotted = [s for s in _spans(doc) if _MODULE.match(s) and not s.startswith("lihq.v1")]
    missing = [s for s in dotted if not resolves(s)]
    assert not missing, f"{doc.relative_to(REPO)} names modules that do not exist: {missing}"


def test_the_checker_catches_a_wrong_path(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("See `orchestrator/core.py`, `orchestrator/no_such.py`, `renders/<id>/render.json`.")
    assert [p for p in repo_paths(doc) if not exists(p)] == ["orchestrator/no_such.py"]
    assert resolves("lihq.grpc.errors.error_from_rpc") and not resolves(
        "orchestrator.batch.render_service_renderer"
    )
