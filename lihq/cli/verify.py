"""`lihq verify MODEL --vectors DIR --seed N` (ARCHITECTURE.md §7).

Each model ships `services/<model>/verify.py` with
`run(vectors: Path, seed: int, workdir: Path) -> list[VerifyRow]`: it synthesizes a checkpoint in the
official layout from the seed, loads it through the real loader, runs every input of the vector set
and compares against the set's outputs with the README's tolerances. This command prints the table
and exits 1 on any miss.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lihq.config import shared_reference_dir
from lihq.errors import InvalidInput

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


def run_verify(model: str, vectors: Path, seed: int) -> list[VerifyRow]:
    if model not in MODELS:
        raise InvalidInput(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    if not vectors.is_dir():
        raise InvalidInput(f"vectors dir {vectors} does not exist")
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
    help="Vector set dir (default: ../shared/reference/<model>/vectors).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed the vector set was made with.")
def verify(model: str, vectors: Path | None, seed: int) -> None:
    """Check a network against upstream's vectors, through the real checkpoint loader."""
    ref_model = "s3fd" if model == "s3fd" else model
    vectors = vectors or shared_reference_dir() / ref_model / "vectors"
    rows = run_verify(model, vectors, seed)
    table = Table(title=f"lihq verify {model} (seed {seed}, {vectors})")
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
