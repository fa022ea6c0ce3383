"""Checks of a Ray Serve multi-app config (a RayService's serveConfigV2, or serve_configs/*.yaml).

Ray Serve's own `ServeDeploySchema` validates types but ignores unknown keys: a misspelt
`max_ongoing_request` would deploy with the default. Here unknown keys are errors (walking the
schema's pydantic models), and on top of the schema:

- application names and route prefixes are unique (and every app has a route prefix);
- every deployment states its resources (num_cpus, num_gpus, memory), its concurrency
  (max_ongoing_requests), a queue bound (max_queued_requests > 0) and either autoscaling bounds or a
  fixed num_replicas;
- the gRPC proxy registers every servicer function listed (importable), and for each known stage app
  the function of its capability plus the health service;
- import paths have the form `package.module:attribute`; for the apps the caller asks for, the module
  imports, `build_app(args)` accepts the args, the deployments named in the config exist in the
  built application, and its ingress implements every method of the stage's gRPC service.
"""

from __future__ import annotations

import importlib
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from lihq.stages import CAPABILITIES, servicer_function

HEALTH_SERVICER = "grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server"
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*$")
_REQUIRED_ACTOR = ("num_cpus", "num_gpus", "memory")


@dataclass(frozen=True)
class DeploymentNeeds:
    """What one deployment asks of the cluster, for the RayService feasibility checks."""

    app: str
    name: str
    num_cpus: float
    num_gpus: float
    memory: float  # bytes
    min_replicas: int
    max_replicas: int


def _models_in(annotation: Any) -> list[type]:
    """pydantic model classes inside an annotation (Optional[X], List[X], Union[Dict, X] ...)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


def unknown_keys(model: type, data: Any, where: str) -> list[str]:
    """Keys of `data` that `model` (a pydantic model class) does not define, recursively."""
    if not isinstance(data, dict):
        return []
    fields = model.model_fields
    names = dict(fields) | {f.alias: f for f in fields.values() if f.alias}
    out: list[str] = []
    for key, value in data.items():
        field = names.get(key)
        if field is None:
            out.append(f"{where}: unknown key {key!r} (known: {', '.join(sorted(fields))})")
            continue
        for sub in _models_in(field.annotation)[:1]:
            if isinstance(value, list):
                for i, item in enumerate(value):
                    out.extend(unknown_keys(sub, item, f"{where}.{key}[{i}]"))
            else:
                out.extend(unknown_keys(sub, value, f"{where}.{key}"))
    return out


def _app_where(app: dict[str, Any], i: int) -> str:
    return f"applications[{i}] ({app.get('name', '?')})"


def check_policy(raw: dict[str, Any]) -> list[str]:
    """Uniqueness and the per-deployment resource/queue/autoscaling statements."""
    out: list[str] = []
    apps = raw.get("applications") or []
    names = [a.get("name") for a in apps]
    for n in sorted({n for n in names if names.count(n) > 1}):
        out.append(f"application name {n!r} is used more than once")
    prefixes = [a.get("route_prefix") for a in apps]
    for p in sorted({p for p in prefixes if p and prefixes.count(p) > 1}):
        out.append(f"route_prefix {p!r} is used by more than one application (they must be unique)")
    for i, app in enumerate(apps):
        where = _app_where(app, i)
        if not app.get("route_prefix"):
            out.append(f"{where}: no route_prefix (every application needs its own)")
        if not _IMPORT_PATH.match(str(app.get("import_path", ""))):
            out.append(f"{where}: import_path {app.get('import_path')!r} is not 'package.module:attribute'")
        if not app.get("deployments"):
            out.append(f"{where}: no deployments listed (resources and queue bounds must be stated)")
        for j, dep in enumerate(app.get("deployments") or []):
            out.extend(_check_deployment(dep, f"{where}.deployments[{j}] ({dep.get('name', '?')})"))
    return out


def _check_deployment(dep: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    actor = dep.get("ray_actor_options") or {}
    missing = [k for k in _REQUIRED_ACTOR if k not in actor]
    if missing:
        out.append(f"{where}: ray_actor_options must state {', '.join(missing)}")
    if "max_ongoing_requests" not in dep:
        out.append(f"{where}: max_ongoing_requests is not set")
    q = dep.get("max_queued_requests")
    if not isinstance(q, int) or q <= 0:
        out.append(f"{where}: max_queued_requests must bound the queue (an integer > 0), got {q!r}")
    auto = dep.get("autoscaling_config")
    if auto is None and not isinstance(dep.get("num_replicas"), int):
        out.append(f"{where}: needs autoscaling_config (min/max replicas) or a fixed num_replicas")
    if isinstance(auto, dict) and not {"min_replicas", "max_replicas"} <= set(auto):
        out.append(f"{where}: autoscaling_config must state min_replicas and max_replicas")
    return out


def check_grpc(raw: dict[str, Any]) -> list[str]:
    funcs = (raw.get("grpc_options") or {}).get("grpc_servicer_functions") or []
    out = [f"grpc_options: {msg}" for f in funcs if (msg := _importable_attr(f, "."))]
    needed = {HEALTH_SERVICER} | {
        servicer_function(a["name"]) for a in raw.get("applications") or [] if a.get("name") in CAPABILITIES
    }
    for fn in sorted(needed - set(funcs)):
        out.append(f"grpc_options.grpc_servicer_functions lacks {fn} (Serve's gRPC proxy would not route it)")
    return out


def _importable_attr(path: str, sep: str) -> str:
    """'' when `path` ('mod.attr' or 'mod:attr') imports to a callable, else the reason."""
    mod, _, attr = path.rpartition(sep) if sep == "." else path.partition(sep)
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except ImportError as exc:
        return f"{path}: cannot import {mod} ({exc})"
    except AttributeError:
        return f"{path}: {mod} has no attribute {attr!r}"
    return "" if callable(obj) else f"{path}: not callable"


def check_app_import(app: dict[str, Any], where: str) -> list[str]:
    """Import the app, build it with its args, compare deployments and the ingress with the proto."""
    path = str(app.get("import_path", ""))
    problem = _importable_attr(path, ":")
    if problem:
        return [f"{where}: import_path {problem}"]
    mod, _, attr = path.partition(":")
    builder = getattr(importlib.import_module(mod), attr)
    try:
        built = builder(app.get("args") or {})
    except Exception as exc:  # the builder's own arg check (unknown or bad args) is a config problem
        return [f"{where}: {path}({app.get('args') or {}}) refused its args: {type(exc).__name__}: {exc}"]
    deployments, ingress = _deployments_of(built, str(app.get("name")))
    out = []
    for dep in app.get("deployments") or []:
        if dep.get("name") not in deployments:
            out.append(
                f"{where}: deployment {dep.get('name')!r} is not in the application "
                f"(it has {sorted(deployments)}); Serve would refuse the config"
            )
    service = CAPABILITIES.get(str(app.get("name")))
    if service and ingress is not None:
        out.extend(_check_ingress(ingress, service, where))
    return out


def _deployments_of(built: Any, name: str) -> tuple[dict[str, Any], Any]:
    """({deployment name: class}, ingress class) of a bound Serve application."""
    try:
        from ray.serve._private.build_app import build_app as serve_build

        b = serve_build(built, name=name)
        classes = {d.name: d.func_or_class for d in b.deployments}
        return classes, classes.get(b.ingress_deployment_name)
    except (ImportError, AttributeError, TypeError):  # private API moved: fall back to the ingress only
        dep = built._bound_deployment
        return {dep.name: dep.func_or_class}, dep.func_or_class


def _check_ingress(cls: Any, service: str, where: str) -> list[str]:
    from google.protobuf import descriptor_pool

    from lihq.stages import PROTO_MODULES, stage_for_service

    importlib.import_module(PROTO_MODULES[stage_for_service(service)].removesuffix("_grpc"))
    desc = descriptor_pool.Default().FindServiceByName(service)
    missing = sorted(m.name for m in desc.methods if not callable(getattr(cls, m.name, None)))
    if not callable(getattr(cls, "Check", None)):
        missing.append("Check (grpc.health.v1)")
    return (
        [f"{where}: ingress {cls.__name__} does not implement {service} methods {missing}"] if missing else []
    )


def deployment_needs(raw: dict[str, Any]) -> list[DeploymentNeeds]:
    out = []
    for app in raw.get("applications") or []:
        for dep in app.get("deployments") or []:
            actor = dep.get("ray_actor_options") or {}
            auto = dep.get("autoscaling_config") or {}
            fixed = dep.get("num_replicas") if isinstance(dep.get("num_replicas"), int) else None
            lo = auto.get("min_replicas", fixed if fixed is not None else 1)
            hi = auto.get("max_replicas", fixed if fixed is not None else 1)
            out.append(
                DeploymentNeeds(
                    str(app.get("name")),
                    str(dep.get("name")),
                    float(actor.get("num_cpus", 1)),
                    float(actor.get("num_gpus", 0)),
                    float(actor.get("memory", 0)),
                    int(lo),
                    int(hi),
                )
            )
    return out


def parse(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """(raw mapping, problems) of a serve config text; raw is None when it is not usable at all."""
    from ray.serve.schema import ServeDeploySchema

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, [f"not valid YAML: {exc}"]
    if not isinstance(raw, dict):
        return None, ["expected a mapping (a Serve multi-app config)"]
    problems = unknown_keys(ServeDeploySchema, raw, "serveConfigV2")
    try:
        ServeDeploySchema.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError: the schema's own message, one line per error
        problems.append("ServeDeploySchema: " + " | ".join(str(exc).splitlines()[:12]))
    return raw, problems


def check_serve_config(text: str, import_apps: Callable[[str], bool] | Iterable[str] = ()) -> list[str]:
    """Every problem of one serve config. `import_apps`: app names (or a predicate) to import and build."""
    raw, problems = parse(text)
    if raw is None:
        return problems
    wanted = import_apps if callable(import_apps) else set(import_apps).__contains__
    problems += check_policy(raw) + check_grpc(raw)
    for i, app in enumerate(raw.get("applications") or []):
        if wanted(str(app.get("name"))) and _IMPORT_PATH.match(str(app.get("import_path", ""))):
            problems += check_app_import(app, _app_where(app, i))
    return problems
