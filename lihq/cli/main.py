"""The `lihq` command. Errors print one line (`error: ...`) and exit 2 for bad input, 1 otherwise."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from lihq import __version__
from lihq.errors import InvalidInput, LihqError

DEFAULT_SERVE_CONFIG = Path(__file__).resolve().parents[2] / "serve_configs" / "local.yaml"


class LihqGroup(click.Group):
    """Turns typed errors raised by any subcommand into a one-line message instead of a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LihqError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(2 if isinstance(exc, InvalidInput) else 1)


serve_config_opt = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_SERVE_CONFIG,
    show_default=True,
    help="Ray Serve multi-app config: the apps (import path + args) to run.",
)


@click.group(cls=LihqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lihq")
def cli() -> None:
    """LIHQ: talking-head videos from a face image and speech, rendered by model services on Ray Serve."""


@cli.command()
@serve_config_opt
@click.option("--grpc-port", type=int, default=None, help="Serve gRPC proxy port (overrides the config).")
@click.option("--http-port", type=int, default=None, help="Serve HTTP proxy port (overrides the config).")
@click.option(
    "--timeout",
    "ready_timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for every app to be RUNNING.",
)
def serve(config_path: Path, grpc_port: int | None, http_port: int | None, ready_timeout: float) -> None:
    """Start Ray + Serve's gRPC proxy and deploy the stage apps; run until Ctrl-C."""
    from lihq import serving
    from lihq.config import RayConfig

    opts = serving.ServeOptions(config_path, grpc_port, http_port, RayConfig.from_env(), ready_timeout)
    cfg = serving.load_serve_config(config_path, grpc_port, http_port)
    click.echo(
        f"starting Ray Serve: apps {[a.name for a in cfg.applications]}, gRPC port {cfg.grpc_options.port}"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        names = serving.deploy(opts)
        click.echo(
            f"ready: gRPC 127.0.0.1:{cfg.grpc_options.port} apps={','.join(names)} "
            "(pass metadata application=<app>)",
            err=False,
        )
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("shutting down")
        serving.shutdown()


@cli.command()
@serve_config_opt
@click.option("--app", "apps", multiple=True, required=True, help="App to host (repeat for several).")
@click.option("--address", default="127.0.0.1:50051", show_default=True, help="host:port to listen on.")
def host(config_path: Path, apps: tuple[str, ...], address: str) -> None:
    """Host apps of a Serve config on one plain gRPC server, without Ray (a stage outside the cluster)."""
    import asyncio

    from lihq import plainhost, serving

    cfg = serving.load_serve_config(config_path)

    async def run() -> None:
        server, port, hosted = await plainhost.host(cfg, apps, address)
        services = ", ".join(s.full_name for a in hosted for s in a.services)
        click.echo(f"ready: {address.rsplit(':', 1)[0]}:{port} apps={','.join(apps)} services: {services}")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        click.echo("shutting down")
        await server.stop(grace=5)

    asyncio.run(run())


def _register_optional() -> None:
    """Mount command groups that live in their own modules."""
    from lihq.cli.weights import weights

    cli.add_command(weights)
    from lihq.cli.render import render

    cli.add_command(render)
    from lihq.cli.verify import verify

    cli.add_command(verify)
    from lihq.cli.capacity import capacity

    cli.add_command(capacity)
    from lihq.cli.tts import tts

    cli.add_command(tts)
    from lihq.cli.client import cancel, list_renders, status, submit, upload, watch

    for cmd in (upload, submit, watch, status, cancel, list_renders):
        cli.add_command(cmd)


_register_optional()


def main() -> None:
    cli(prog_name="lihq")


if __name__ == "__main__":
    main()
