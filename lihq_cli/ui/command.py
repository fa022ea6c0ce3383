"""`lihq ui`: serve the web page for renders (lihq_cli/ui/) against a RenderService."""

from __future__ import annotations

import click


@click.command()
@click.option("--address", default="127.0.0.1:9000", show_default=True, help="RenderService address (gRPC).")
@click.option("--application", default="orchestrator", show_default=True, help="Serve app name.")
@click.option(
    "--token",
    default=None,
    envvar="LIHQ_API_TOKEN",
    show_envvar=True,
    help="API token the page's server sends (default: $LIHQ_HOME/api-token). It never reaches the browser.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface the page listens on.")
@click.option("--port", type=int, default=8800, show_default=True, help="Port the page listens on.")
@click.option(
    "--max-upload-mb",
    type=click.IntRange(1),
    default=2048,
    show_default=True,
    help="Largest file the page accepts.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="Host name the page may be reached by (repeat; default: loopback names, or any when --host is not loopback).",
)
def ui(address, application, token, host, port, max_upload_mb, allowed_hosts):
    """Serve a web page: upload a face and speech, set every knob, watch progress, play the video while it
    renders (HLS), download, list and cancel renders. Anyone who can reach the page acts with its token:
    keep --host on loopback unless the network is yours."""
    import uvicorn

    from lihq.client import Client
    from lihq_cli.ui.app import create_app

    client = Client(address, token=token, application=application)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    hosts = list(allowed_hosts) or (["127.0.0.1", "localhost", "[::1]"] if loopback else ["*"])
    app = create_app(client, max_upload_mb << 20, hosts)
    click.echo(f"ready: http://{host}:{port}/ (RenderService {address})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
