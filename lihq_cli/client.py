"""`lihq upload / submit / watch / status / cancel / list / download`: talk to a running RenderService
(`lihq serve`, or a cluster's proxy) through lihq.client.Client. Inputs go up through
RenderService.UploadInput (no store credentials needed) and land content-addressed under the tenant's
tenants/<tenant>/inputs/<sha256>.<ext>. Every call sends `authorization: Bearer <token>` with --token,
else LIHQ_API_TOKEN, else the token in $LIHQ_HOME/api-token."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from lihq.client import STATE_NAMES as STATE
from lihq.errors import InvalidInput

address_opt = click.option(
    "--address", default="127.0.0.1:9000", show_default=True, help="RenderService address."
)
app_opt = click.option("--application", default="orchestrator", show_default=True, help="Serve app name.")


def _client(address: str, application: str):
    from lihq.client import Client

    return Client(address, application=application)


def _line(r) -> str:
    done = sum(p.done for p in r.progress)
    total = sum(p.total for p in r.progress)
    out = f"{r.render_id}  {STATE[r.state]:<9}  {done}/{total} tasks"
    if r.output.key:
        out += f"  output={r.output.key}"
    if r.error:
        where = ", ".join(x for x in (r.error_stage or "?", r.error_code) if x)
        out += f"  error({where})={r.error}"
    return out


def upload_file(client, path: Path, what: str = "file") -> str:
    """Upload one local file; return its inputs/ key."""
    return client.upload(path, what=what).key


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@address_opt
@app_opt
def upload(files, address, application):
    """Upload files through RenderService.UploadInput; print each one's key (use it in a RenderSpec)."""
    with _client(address, application) as c:
        for path in files:
            click.echo(f"{upload_file(c, path)}  {path}")


@click.command()
@click.option("--face", type=click.Path(path_type=Path), required=True)
@click.option("--audio", type=click.Path(path_type=Path), default=None)
@click.option("--text", default=None)
@click.option("--passes", type=click.IntRange(1, 2), default=2)
@click.option("--interpolate", type=click.IntRange(0, 7), default=0)
@click.option("--idempotency-key", default="")
@address_opt
@app_opt
def submit(face, audio, text, passes, interpolate, idempotency_key, address, application):
    """Create a render on a running RenderService (inputs uploaded through it); print its id."""
    from lihq.v1 import render_pb2

    if bool(audio) == bool(text):
        raise InvalidInput("give exactly one of --audio or --text")
    with _client(address, application) as c:
        spec = render_pb2.RenderSpec(face=c.upload(face, what="face"), passes=passes, interpolate=interpolate)
        if audio:
            spec.audio.CopyFrom(c.upload(audio, what="audio"))
        else:
            spec.text = text
        for r in c.create(spec, idempotency_key=idempotency_key):
            click.echo(r.render_id)


@click.command()
@click.argument("render_id")
@address_opt
@app_opt
def watch(render_id, address, application):
    """Stream a render's progress until it ends."""
    console = Console()
    with _client(address, application) as c:
        for ev in c.watch(render_id):
            console.print(_line(ev.render))


@click.command()
@click.argument("render_id")
@address_opt
@app_opt
def status(render_id, address, application):
    """Show one render."""
    with _client(address, application) as c:
        click.echo(_line(c.get(render_id)))


@click.command()
@click.argument("render_id")
@address_opt
@app_opt
def cancel(render_id, address, application):
    """Cancel a render (stops scheduling, cancels in-flight calls)."""
    with _client(address, application) as c:
        click.echo(_line(c.cancel(render_id)))


@click.command(name="list")
@address_opt
@app_opt
def list_renders(address, application):
    """List renders."""
    with _client(address, application) as c:
        for r in c.list():
            click.echo(_line(r))


@click.command()
@click.argument("render_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="File to write.")
@click.option(
    "--file",
    "name",
    default="output.mp4",
    show_default=True,
    help="Which of the render's files: output.mp4, or hls/<name> of its progressive playlist.",
)
@address_opt
@app_opt
def download(render_id, output, name, address, application):
    """Download a finished render's video (RenderService.ReadRenderFile) with a progress bar."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with (
        _client(address, application) as c,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
        ) as bar,
    ):
        task = bar.add_task(name, total=None)
        c.download(
            render_id, output, lambda done, total: bar.update(task, completed=done, total=total or None), name
        )
    click.echo(f"{output}")
