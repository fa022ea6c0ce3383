"""Conformance checking against a vector set (inputs + upstream outputs for seed-N weights): the
library behind `lihq verify` (lihq_cli/verify.py) and each stage's services/<model>/verify.py.
The vectors and their fill rule are read only from the directory the caller names."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lihq.errors import InvalidInput

FILL_FILE = "fill_weights.py"

MODELS = {
    "fomm": "services.fomm.verify",
    "wav2lip": "services.wav2lip.verify",
    "s3fd": "services.wav2lip.verify_s3fd",
    "gfpgan": "services.gfpgan.verify",
    "modnet": "services.modnet.verify",
    "qvi": "services.qvi.verify",
}


@dataclass(frozen=True)
class VerifyRow:
    """One compared output: max abs error vs its tolerance (rtol rows compare relative error)."""

    case: str
    output: str
    max_abs_err: float
    tolerance: float
    kind: str = "atol"  # or "rtol"

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_err <= self.tolerance)


def find_vector_file(vectors: Path, name: str, levels: int = 2) -> Path | None:
    """`name` in the vectors dir or up to `levels` dirs above it (the set's shared files), or None."""
    base = Path(vectors).resolve()
    for d in [base, *base.parents][: levels + 1]:
        if (d / name).is_file():
            return d / name
    return None


def vector_fill(vectors: Path) -> tuple[object, str]:
    """(fill_tensor, rule name) of the vector set's `fill_weights.py`; InvalidInput when it has none.

    The rule name (`vectors:<md5 prefix>`) goes into the synthetic files' sidecars and weights ids.
    """
    path = find_vector_file(vectors, FILL_FILE)
    if path is None:
        raise InvalidInput(
            f"--vectors {vectors}: no {FILL_FILE} in it or in the two dirs above it; the vector set's "
            "weights fill rule is needed to reproduce its outputs"
        )
    spec = importlib.util.spec_from_file_location("lihq_vectors_fill_weights", path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"--vectors: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fill = getattr(module, "fill_tensor", None)
    if not callable(fill):
        raise InvalidInput(f"--vectors: {path} defines no fill_tensor(key, shape, seed)")
    return fill, "vectors:" + hashlib.md5(path.read_bytes()).hexdigest()[:12]


def synthesize_for(name: str, seed: int, workdir: Path, vectors: Path) -> list[Path]:
    """Synthetic weights of registry entry `name` filled by the vector set's rule, under `workdir`."""
    from lihq.weights.synth import synthesize

    fill, rule = vector_fill(vectors)
    return synthesize(name, seed, workdir, fill=fill, rule=rule)  # type: ignore[arg-type]


def run_verify(model: str, vectors: Path, seed: int) -> list[VerifyRow]:
    if model not in MODELS:
        raise InvalidInput(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    if not vectors.is_dir():
        raise InvalidInput(f"--vectors {vectors}: no such directory (give a conformance vector set)")
    try:
        mod = importlib.import_module(MODELS[model])
    except ModuleNotFoundError as exc:
        raise InvalidInput(f"{model}: no verifier installed yet ({exc.name})") from exc
    with tempfile.TemporaryDirectory(prefix=f"lihq-verify-{model}-") as tmp:
        return mod.run(vectors, seed, Path(tmp))


def run_verify_at(model: str, vectors: Path, seed: int, precision: str) -> list[Any]:
    """The verifier's rows at `precision`, each graded with that precision's tolerance."""
    from lihq.precision import autocast_everywhere, tolerance_for

    with autocast_everywhere(precision):
        rows = run_verify(model, vectors, seed)
    if precision == "fp32":
        return rows
    return [replace(r, tolerance=tolerance_for(model, precision, r.output, r.tolerance)) for r in rows]
