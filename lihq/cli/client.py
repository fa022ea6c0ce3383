"""`lihq submit / watch / status / cancel / list`: talk to a running RenderService (`lihq serve`, or a
cluster's proxy) over gRPC. Inputs go up through RenderService.UploadInput (no store credentials needed)
and land content-addressed under the tenant's tenants/<tenant>/inputs/<sha256>.<ext>. Every call sends
`authorization: Bearer <token>` with the token of LIHQ_API_TOKEN, else of $LIHQ_HOME/api-token."""

from __future__ import annotations

from pathlib import Path

import click
import grpc
from rich.console import Console

from lihq.errors import InvalidInput
from lihq.grpc.errors import error_from_rpc

STATE = {0: "UNSPECIFIED", 1: "QUEUED", 2: "RUNNING", 3: "SUCCEEDED", 4: "FAILED", 5: "CANCELLED"}
address_opt = click.option(
    "--address", default="127.0.0.1:9000", show_default=True, help="RenderService address."
)
app_opt = click.option("--application", default="orchestrator", show_default=True, help="Serve app name.")


def _stub(address: str):
    from lihq.grpc.client import open_channel
    from lihq.v1 import render_pb2_grpc

    return render_pb2_grpc.RenderServiceStub(open_channel(address))


def _metadata(application: str) -> tuple[tuple[str, str], ...]:
    """`application` for Serve's proxy, and the API token: LIHQ_API_TOKEN, else $LIHQ_HOME/api-token
    (the admin token `lihq serve` saved there on its first start)."""
    from lihq.auth import client_token

    token = client_token()
    return (("application", application),) + ((("authorization", f"Bearer {token}"),) if token else ())


def _call(fn, request, application: str, timeout: float = 120.0):
    try:
        return fn(request, metadata=_metadata(application), timeout=timeout)
    except grpc.RpcError as exc:
        raise error_from_rpc(exc) from exc


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


def upload_file(stub, path: Path, application: str, what: str = "file") -> str:
    """Stream one local file to UploadInput; return its inputs/ key."""
    from orchestrator.uploads import chunks

    if not path.is_file():
        raise InvalidInput(f"{what} {path}: no such file")
    return _call(stub.UploadInput, chunks(path), application, timeout=3600).object.key


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@address_opt
@app_opt
def upload(files, address, application):
    """Upload files through RenderService.UploadInput; print each one's key (use it in a RenderSpec)."""
    stub = _stub(address)
    for path in files:
        click.echo(f"{upload_file(stub, path, application)}  {path}")


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
    from lihq.v1 import common_pb2, render_pb2

    if bool(audio) == bool(text):
        raise InvalidInput("give exactly one of --audio or --text")
    stub = _stub(address)
    face_key = upload_file(stub, face, application, "face")
    spec = render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key=face_key), passes=passes, interpolate=interpolate
    )
    if audio:
        spec.audio.key = upload_file(stub, audio, application, "audio")
    else:
        spec.text = text
    req = render_pb2.CreateRenderRequest(renders=[spec], idempotency_key=idempotency_key)
    for r in _call(stub.CreateRender, req, application).renders:
        click.echo(r.render_id)


@click.command()
@click.argument("render_id")
@address_opt
@app_opt
def watch(render_id, address, application):
    """Stream a render's progress until it ends."""
    from lihq.v1 import render_pb2

    console = Console()
    stream = _call(
        _stub(address).WatchRender, render_pb2.WatchRenderRequest(render_id=render_id), application, 86400
    )
    try:
        for ev in stream:
            console.print(_line(ev.render))
    except grpc.RpcError as exc:
        raise error_from_rpc(exc) from exc


@click.command()
@click.argument("render_id")
@address_opt
@app_opt
def status(render_id, address, application):
    """Show one render."""
    from lihq.v1 import render_pb2

    click.echo(
        _line(_call(_stub(address).GetRender, render_pb2.GetRenderRequest(render_id=render_id), application))
    )


@click.command()
@click.argument("render_id")
@address_opt
@app_opt
def cancel(render_id, address, application):
    """Cancel a render (stops scheduling, cancels in-flight calls)."""
    from lihq.v1 import render_pb2

    req = render_pb2.CancelRenderRequest(render_id=render_id)
    click.echo(_line(_call(_stub(address).CancelRender, req, application)))


@click.command(name="list")
@address_opt
@app_opt
def list_renders(address, application):
    """List renders."""
    from lihq.v1 import render_pb2

    token = ""
    while True:
        page = _call(_stub(address).ListRenders, render_pb2.ListRendersRequest(page_token=token), application)
        for r in page.renders:
            click.echo(_line(r))
        token = page.next_page_token
        if not token:
            return
