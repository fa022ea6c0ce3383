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

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lihq.errors import InvalidInput
from lihq.verify import FILL_FILE, MODELS, run_verify, run_verify_at


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
