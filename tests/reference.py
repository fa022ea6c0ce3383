"""The one place the tests look for the shared conformance set (manifests, vectors, fill rule).

Nothing under lihq/, services/ or orchestrator/ looks for it: the project runs from a clone with
nothing beside it. Tests that compare with upstream's vectors find the set here: `LIHQ_REFERENCE_DIR`
when set, else `../shared/reference` beside the checkout (how the development and CI machines lay it
out). Where it is absent those tests SKIP, and the reason names the missing path.

    from tests.reference import needs, ref_path, synthesize_reference
    pytestmark = needs("fomm/vectors")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    env = os.environ.get("LIHQ_REFERENCE_DIR")
    return Path(env) if env else REPO.parent / "shared" / "reference"


REF = reference_dir()


def ref_path(*parts: str) -> Path:
    """A path inside the reference set (it may not exist; guard with `needs`)."""
    return REF.joinpath(*parts)


def missing(*parts: str) -> list[Path]:
    """The named reference paths (relative to the set's root) that are absent."""
    return [p for p in (ref_path(x) for x in parts) if not p.exists()]


def skip_reason(*parts: str) -> str:
    gone = missing(*parts)
    shown = ", ".join(str(p) for p in gone) if gone else ""
    return (
        f"needs the shared conformance set: {shown} not found "
        "(set LIHQ_REFERENCE_DIR or put shared/reference beside the checkout)"
    )


def needs(*parts: str) -> pytest.MarkDecorator:
    """skipif-mark: skip unless every named path of the reference set exists (reason names the gaps)."""
    return pytest.mark.skipif(bool(missing(*parts)), reason=skip_reason(*parts))


def require(*parts: str) -> None:
    """pytest.skip (inside a test or fixture) unless the named reference paths exist."""
    if missing(*parts):
        pytest.skip(skip_reason(*parts))


def load_manifest(rel: str) -> dict[str, list[int]]:
    """{key: shape} of a reference manifest (the `{"shapes": ...}` form accepted)."""
    require(rel)
    data = json.loads(ref_path(rel).read_text())
    shapes = data["shapes"] if isinstance(data.get("shapes"), dict) else data
    return {k: [int(s) for s in v] for k, v in shapes.items()}


def synthesize_reference(name: str, seed: int, root: Path, vectors: str) -> list[Path]:
    """Synthetic weights filled by the reference set's own rule (as `lihq verify` makes them)."""
    from lihq.verify import synthesize_for

    require(vectors, "fill_weights.py")
    return synthesize_for(name, seed, root, ref_path(vectors))
