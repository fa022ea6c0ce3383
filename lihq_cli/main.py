"""The `lihq` command. Errors print one line (`error: ...`) and exit 2 for bad input, 1 otherwise."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from lihq import __version__
from lihq.errors import InvalidInput, LihqError

DEFAULT_SERVE_CONFIG = Path(__file__).resolve().parents[1] / "serve_configs" / "local.yaml"


class LihqGroup(click.Group):
    """Turns typed errors raised by any subcommand into a one-line message instead of a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LihqError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(2 if isinstance(exc, InvalidInput) else 1)

    def main(self, *args, **kwargs):  # type: ignore[override]
        """Click's own usage errors (a missing option, a bad value) as one `error:` line too."""
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "lihq"
            click.echo(f"error: {exc.format_message()} (see `{where} --help`)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


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
@click.option(
    "--weights",
    "weights_mode",
    type=click.Choice(["real", "synthetic"]),
    default="real",
    show_default=True,
    help="synthetic: deterministic stand-in checkpoints, to smoke-test a deployment end to end.",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Accept calls without API tokens and stage calls without the internal credential (never on a network).",
)
def serve(
    config_path: Path,
    grpc_port: int | None,
    http_port: int | None,
    ready_timeout: float,
    weights_mode: str,
    insecure_no_auth: bool,
) -> None:
    """Start Ray + Serve's gRPC proxy and deploy the stage apps; run until Ctrl-C.

    Clients authenticate with `authorization: Bearer <token>`: the first start creates an admin token in
    $LIHQ_HOME/api-token (see `lihq tokens`)."""
    from lihq import auth
    from lihq.config import RayConfig
    from lihq_cli import serving

    for line in auth.prepare_serve(insecure_no_auth):
        click.echo(line)

    if weights_mode == "synthetic":
        from rich.console import Console

        from lihq_cli.weightsmode import SERVE_RECIPE, prepare_weights

        wdir = prepare_weights(SERVE_RECIPE, "synthetic", Console(stderr=True))
        click.echo(f"SYNTHETIC WEIGHTS in {wdir}: renders are smoke tests, not real videos")

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

    from lihq import plainhost
    from lihq_cli import serving

    cfg = serving.load_serve_config(config_path)
    from lihq.auth import auth_enabled
    from lihq.grpc.auth import internal_token

    if auth_enabled() and not internal_token():
        click.echo(
            "warning: LIHQ_INTERNAL_TOKEN is not set, so these stages refuse every call: set it to the "
            "orchestrator's (or LIHQ_AUTH=off on a sealed dev box)",
            err=True,
        )

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
    from lihq_cli.weights import weights

    cli.add_command(weights)
    from lihq_cli.render import render

    cli.add_command(render)
    from lihq_cli.verify import verify

    cli.add_command(verify)
    from lihq_cli.capacity.command import capacity

    cli.add_command(capacity)
    from lihq_cli.tts import tts

    cli.add_command(tts)
    from lihq_cli.client import cancel, download, list_renders, status, submit, upload, watch
    from lihq_cli.tokens import tokens

    cli.add_command(tokens)
    from lihq_cli.ui.command import ui

    cli.add_command(ui)

    for cmd in (upload, submit, watch, status, cancel, list_renders, download):
        cli.add_command(cmd)


_register_optional()


def main() -> None:
    cli(prog_name="lihq")


if __name__ == "__main__":
    main()
