"""`lihq host`: run Serve apps of a Serve config on one plain `grpc.aio` server — no Ray.

The same deployment classes that Serve runs (built by each app's `build_app(args)` from the config)
are instantiated in this process and served with health + reflection. Uses: a stage on a machine
outside the Ray cluster (a swapped model, a dev box, a sidecar — point the orchestrator at it with
`LIHQ_STAGE_<NAME>_ADDRESS`), or the orchestrator alone against stages elsewhere. A plain server routes
by service name, so the apps hosted together must implement distinct services; apps that compose
other deployments through handles (tts: SpeechService + SpeechWorker) need `lihq serve`.

One replica per app, no autoscaling, no GPU scheduling, and the config's runtime_env is not applied
(set those variables in this process's environment): that is what Serve is for.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from lihq import stages
from lihq.errors import InvalidInput

# the proto modules of every stage in the one stage table (lihq/stages.py REGISTRY), e.g. "media"
PROTO_MODULES = tuple(
    m.removeprefix("lihq.v1.").removesuffix("_pb2_grpc") for m in stages.PROTO_MODULES.values()
)


@dataclass
class HostedApp:
    name: str
    servicer: Any
    services: list[ServiceDescriptor]


def all_services() -> list[ServiceDescriptor]:
    out = []
    for mod in PROTO_MODULES:
        pb2 = importlib.import_module(f"lihq.v1.{mod}_pb2")
        out.extend(pb2.DESCRIPTOR.services_by_name.values())
    return out


def services_of(servicer: Any) -> list[ServiceDescriptor]:
    """The LIHQ services whose every method the servicer implements."""
    cls = type(servicer)  # class attributes: HealthMixin answers other services' RPCs on instances
    return [s for s in all_services() if all(callable(getattr(cls, m.name, None)) for m in s.methods)]


async def instantiate(app_cfg: Any) -> HostedApp:
    """Build one app of a validated Serve config (`ServeApplicationSchema`) as a plain object."""
    module_name, _, attr = app_cfg.import_path.partition(":")
    builder = getattr(importlib.import_module(module_name), attr)
    app = builder(dict(app_cfg.args or {}))
    bound = getattr(app, "_bound_deployment", None)  # Serve's Application (checked on Ray 2.60)
    if bound is None:
        raise InvalidInput(f"app {app_cfg.name}: {app_cfg.import_path} did not build a Serve application")
    args = tuple(bound.init_args) + tuple(bound.init_kwargs.values())
    if any(type(a).__name__ in ("Application", "DeploymentHandle") for a in args):
        raise InvalidInput(
            f"app {app_cfg.name} composes several deployments through handles; host it with `lihq serve`"
        )
    cls = bound.func_or_class
    servicer = cls.__new__(cls)
    init = servicer.__init__(*bound.init_args, **bound.init_kwargs)
    if inspect.isawaitable(init):
        await init
    services = services_of(servicer)
    if not services:
        raise InvalidInput(f"app {app_cfg.name}: {cls.__name__} implements no LIHQ gRPC service")
    return HostedApp(app_cfg.name, servicer, services)


def select_apps(cfg: Any, names: Sequence[str]) -> list[Any]:
    known = {a.name: a for a in cfg.applications}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(f"no app {unknown} in the serve config; it has {sorted(known)}")
    return [known[n] for n in names]


async def host(cfg: Any, names: Sequence[str], address: str) -> tuple[Any, int, list[HostedApp]]:
    """Instantiate the named apps and serve them on `address`; return (server, port, apps)."""
    from lihq.grpc.server import serve_plain_many

    apps = [await instantiate(a) for a in select_apps(cfg, names)]
    seen: dict[str, str] = {}
    for app in apps:
        for svc in app.services:
            if svc.full_name in seen:
                raise InvalidInput(
                    f"apps {seen[svc.full_name]} and {app.name} both implement {svc.full_name}; "
                    "host them on different ports"
                )
            seen[svc.full_name] = app.name
    server, port = await serve_plain_many([(a.servicer, a.services) for a in apps], address)
    return server, port, apps
