"""`lihq tokens add / list / revoke`: the API tokens RenderService accepts (lihq/auth.py).

The registry ($LIHQ_TOKENS_FILE, default $LIHQ_HOME/tokens.json) keeps only each token's sha256; the
token itself is printed once, by `add`. A running `lihq serve` re-reads the file at the next call.
"""

from __future__ import annotations

from pathlib import Path

import click

from lihq import auth

file_opt = click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Token registry (default: $LIHQ_TOKENS_FILE, else $LIHQ_HOME/tokens.json).",
)


def _file(path: Path | None) -> auth.TokenFile:
    return auth.TokenFile(path or auth.tokens_file())


@click.group()
def tokens() -> None:
    """Manage RenderService API tokens (clients send `authorization: Bearer <token>`)."""


@tokens.command()
@click.argument("tenant")
@click.option(
    "--rights",
    default="read,write",
    show_default=True,
    help="Comma-separated: read (Get/List/Watch), write (Create/Cancel/Upload), admin (every tenant).",
)
@click.option("--note", default="", help="A note shown by `lihq tokens list`.")
@file_opt
def add(tenant: str, rights: str, note: str, path: Path | None) -> None:
    """Create a token for TENANT and print it (only its hash is stored: keep it now)."""
    tf = _file(path)
    reg = tf.load()
    token, entry = reg.add(tenant, tuple(r.strip() for r in rights.split(",") if r.strip()), note)
    tf.save(reg)
    click.echo(token)
    click.echo(
        f"token {entry.id} for tenant {entry.tenant} ({','.join(entry.rights)}) added to {tf.path}", err=True
    )


@tokens.command(name="list")
@file_opt
def list_tokens(path: Path | None) -> None:
    """List tokens: id, tenant, rights, created, revoked (never the tokens themselves)."""
    tf = _file(path)
    for t in tf.load().tokens:
        state = f"revoked {t.revoked_at}" if t.revoked_at else "active"
        note = f"  {t.note}" if t.note else ""
        click.echo(f"{t.id}  {t.tenant:<20}  {','.join(t.rights):<16}  {t.created_at}  {state}{note}")


@tokens.command()
@click.argument("ident")
@file_opt
def revoke(ident: str, path: Path | None) -> None:
    """Revoke the token with id IDENT, or every token of the tenant IDENT."""
    tf = _file(path)
    reg = tf.load()
    hit = reg.revoke(ident)
    tf.save(reg)
    for t in hit:
        click.echo(f"revoked {t.id} (tenant {t.tenant})")
    if not hit:
        click.echo(f"{ident}: already revoked")
