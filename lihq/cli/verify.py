"""`lihq verify MODEL --vectors DIR --seed N` (docs/architecture.md, "Conformance").

Each model ships `services/<model>/verify.py` with
`run(vectors: Path, seed: int, workdir: Path) -> list[VerifyRow]`: it synthesizes a checkpoint in the
official layout from the seed, loads it through the real loader, runs every input of the vector set
and compares against the set's outputs with the README's tolerances. This command prints the table
and exits 1 on any miss.

A vector set is user data given with `--vectors`; nothing here looks for one on its own. The set's
outputs were made with weights filled by the set's own rule, `fill_weights.py`, shipped beside it
(in the vectors dir or up to two levels above it, e.g. `reference/fill_weights.py` for
`reference/fomm/vectors`); `vector_fill` loads that file, at verify time only, and the verifiers
synthesize with it (`synthesize(..., fill=...)`) instead of LIHQ's own rule.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

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


@click.command()
@click.argument("model", type=click.Choice(sorted(MODELS)))
@click.option(
    "--vectors",
    type=click.Path(path_type=Path),
    default=None,
    help="Conformance vector set dir of MODEL (e.g. reference/fomm/vectors); required.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed the vector set was made with.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    default="fp32",
    show_default=True,
    help="Run the networks under autocast at this precision, graded with its measured tolerances "
    "(lihq/precision.py).",
)
def verify(model: str, vectors: Path | None, seed: int, precision: str) -> None:
    """Check a network against upstream's vectors, through the real checkpoint loader."""
    if vectors is None:
        raise InvalidInput(
            f"lihq verify {model} needs --vectors DIR: the conformance vector set to compare with "
            f"(e.g. reference/{model}/vectors, with {FILL_FILE} beside it); the project ships none"
        )
    if precision == "fp32":
        rows = run_verify(model, vectors, seed)
    else:
        from lihq.precision import run_verify_at

        rows = run_verify_at(model, vectors, seed, precision)
    table = Table(title=f"lihq verify {model} (seed {seed}, {precision}, {vectors})")
    for col in ("case", "output", "max err", "tolerance", ""):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.case,
            r.output,
            f"{r.max_abs_err:.3g}",
            f"{r.kind} {r.tolerance:.3g}",
            "[green]ok[/]" if r.ok else "[red]MISS[/]",
        )
    Console().print(table)
    misses = [r for r in rows if not r.ok]
    if not rows:
        click.echo("error: no outputs were compared", err=True)
        sys.exit(1)
    if misses:
        click.echo(f"{len(misses)} of {len(rows)} outputs outside tolerance", err=True)
        sys.exit(1)
    click.echo(f"all {len(rows)} outputs within tolerance")
