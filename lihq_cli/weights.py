"""`lihq weights …`: list, fetch, verify and synthesize checkpoints (docs/architecture.md, "Weights").

The group is exported as `weights`; `lihq_cli.main` mounts it. Every command turns a
`lihq.errors.LihqError` into one line `error: <message>` on stderr and exit status 1 (no traceback).
`verify` exits 1 when any present file fails its size/hash check.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from lihq.config import WeightsConfig
from lihq.errors import LihqError
from lihq.weights.fetch import FileStatus, fetch, list_entries, verify
from lihq.weights.synth import synthesize

F = TypeVar("F", bound=Callable[..., Any])
_STATUS_STYLE = {
    "ok": "green",
    "unverified": "yellow",
    "synthetic": "magenta",
    "missing": "dim",
    "bad": "red",
}


def _console() -> Console:
    return Console(highlight=False)


def _one_line_errors(func: F) -> F:
    """Print a LihqError as `error: <message>` and exit 1 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LihqError as exc:
            click.echo(f"error: {' '.join(str(exc).split())}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _size(n: int | None) -> str:
    """Bytes in decimal units (`?` when unknown)."""
    if n is None:
        return "?"
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            return f"{value:.1f} {unit}"
    return "?"


def _cfg(ctx: click.Context) -> WeightsConfig:
    return ctx.obj["weights_cfg"]


@click.group(name="weights")
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Weights directory (default: $LIHQ_WEIGHTS_DIR or the user cache dir).",
)
@click.pass_context
def weights(ctx: click.Context, weights_dir: Path | None) -> None:
    """List, download, verify and synthesize model checkpoints."""
    ctx.ensure_object(dict)
    ctx.obj["weights_cfg"] = WeightsConfig(dir=weights_dir) if weights_dir else WeightsConfig.from_env()


@weights.command(name="list")
@click.pass_context
@_one_line_errors
def list_cmd(ctx: click.Context) -> None:
    """Show every known checkpoint set, its size, whether it is present and its license."""
    cfg = _cfg(ctx)
    table = Table(title=f"weights in {cfg.dir}")
    for col in ("name", "files", "size", "present", "license"):
        table.add_column(col)
    for row in list_entries(cfg):
        present = f"{row.present}/{row.files}"
        if row.synthetic:
            present += f" ({row.synthetic} synthetic)"
        name = row.name + (" (optional)" if row.optional else "")
        table.add_row(name, str(row.files), _size(row.size), present, row.license)
    _console().print(table)


@weights.command(name="fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Download again even when the file is present.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Network timeout (seconds).")
@click.pass_context
@_one_line_errors
def fetch_cmd(ctx: click.Context, names: tuple[str, ...], force: bool, timeout: float) -> None:
    """Download NAMES (see `lihq weights list`) with a progress bar, verifying hashes when known."""
    cfg = _cfg(ctx)
    console = _console()
    for name in names:
        for res in fetch(name, cfg, progress=True, force=force, timeout=timeout):
            note = " (synthetic; --force downloads the real file)" if res.synthetic else ""
            console.print(f"{res.entry}: {res.file} {res.action}{note} -> {res.path}")


def _status_table(rows: list[FileStatus]) -> Table:
    table = Table()
    for col in ("name", "file", "status", "size", "hash", "detail"):
        table.add_column(col)
    for r in rows:
        style = _STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.entry, r.file, f"[{style}]{r.status}[/{style}]", _size(r.size), r.hash_check, r.detail
        )
    return table


@weights.command(name="verify")
@click.argument("names", nargs=-1)
@click.pass_context
@_one_line_errors
def verify_cmd(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Check present files against known sizes / hashes (all entries when no NAME). Exit 1 on a failure."""
    rows = verify(list(names), _cfg(ctx))
    _console().print(_status_table(rows))
    bad = [r for r in rows if r.failed]
    if bad:
        click.echo(
            f"error: {len(bad)} file(s) failed verification: {', '.join(r.file for r in bad)}", err=True
        )
        sys.exit(1)


@weights.command(name="synthesize")
@click.argument("name")
@click.option(
    "--seed",
    type=int,
    required=True,
    help="Seed of the deterministic fill (lihq.weights.fill, LIHQ's own rule).",
)
@click.option(
    "--dir",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write under this directory instead of the weights dir.",
)
@click.pass_context
@_one_line_errors
def synthesize_cmd(ctx: click.Context, name: str, seed: int, out_dir: Path | None) -> None:
    """Write synthetic (NOT real) weights for NAME in the official file layout."""
    paths = synthesize(name, seed, out_dir if out_dir is not None else _cfg(ctx))
    for p in paths:
        click.echo(f"{name}: wrote SYNTHETIC weights (seed {seed}) -> {p}")


__all__ = ["weights"]
