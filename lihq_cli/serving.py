"""`lihq serve`: start a local Ray (or join one), Serve's gRPC proxy, and the stage apps of a config.

The config is a Ray Serve multi-application config (the same `serveConfigV2` a KubeRay RayService
embeds): validated with Serve's own schema, then deployed through Serve's controller exactly like
`serve deploy`. On a machine without CUDA a logical GPU is declared to the local Ray, because a
deployment that asks for a GPU that does not exist waits forever.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lihq.config import RayConfig
from lihq.errors import InvalidInput, Unavailable


@dataclass(frozen=True)
class ServeOptions:
    config_path: Path
    grpc_port: int | None = None  # overrides grpc_options.port of the config
    http_port: int | None = None
    ray: RayConfig = RayConfig()
    ready_timeout_s: float = 300.0
    log_to_driver: bool = True  # False: replica logs stay in Ray's log files (quiet CLI renders)


def load_serve_config(path: Path, grpc_port: int | None = None, http_port: int | None = None) -> Any:
    """Parse + validate a Serve config file; apply port overrides; check route prefixes are unique."""
    from ray.serve.schema import ServeDeploySchema

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise InvalidInput(f"serve config {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"serve config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"serve config {path}: expected a mapping at the top level")
    if grpc_port is not None:
        raw.setdefault("grpc_options", {})["port"] = grpc_port
    if http_port is not None:
        raw.setdefault("http_options", {})["port"] = http_port
    try:
        cfg = ServeDeploySchema.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError: report it as the user's input problem
        raise InvalidInput(f"serve config {path} is invalid: {exc}") from exc
    prefixes = [a.route_prefix for a in cfg.applications if a.route_prefix]
    dupes = sorted({p for p in prefixes if prefixes.count(p) > 1})
    if dupes:
        raise InvalidInput(f"serve config {path}: route_prefix values must be unique, repeated: {dupes}")
    return cfg


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def init_ray(rc: RayConfig, log_to_driver: bool = True) -> None:
    import ray

    rc.apply_auth_env()
    if ray.is_initialized():
        return
    if rc.address:
        ray.init(address=rc.address, namespace="lihq", log_to_driver=log_to_driver)
        return
    kwargs: dict[str, Any] = {"namespace": "lihq", "include_dashboard": False, "log_to_driver": log_to_driver}
    if not _has_cuda() and rc.logical_gpus > 0:
        kwargs["num_gpus"] = rc.logical_gpus
    if rc.num_cpus:
        kwargs["num_cpus"] = rc.num_cpus
    ray.init(**kwargs)


def deploy(opts: ServeOptions) -> list[str]:
    """Start Serve with the config's gRPC/HTTP options and deploy its apps; block until RUNNING."""
    from ray.serve._private import api as serve_api
    from ray.serve.config import HTTPOptions, gRPCOptions

    cfg = load_serve_config(opts.config_path, opts.grpc_port, opts.http_port)
    if not opts.ray.address:  # a local Ray: the orchestrator app reaches the stages through this proxy
        os.environ.setdefault("LIHQ_STAGES_ADDRESS", f"127.0.0.1:{cfg.grpc_options.port}")
    from lihq.grpc.auth import ensure_internal_token

    ensure_internal_token()  # before Ray starts: local replicas inherit it; the orchestrator sends it
    init_ray(opts.ray, opts.log_to_driver)
    http = HTTPOptions(**cfg.http_options.model_dump()) if cfg.http_options else None
    grpc = gRPCOptions(**cfg.grpc_options.model_dump())
    client = serve_api.serve_start(http_options=http, grpc_options=grpc, proxy_location=cfg.proxy_location)
    client.deploy_apps(cfg, _blocking=False)
    names = [a.name for a in cfg.applications]
    wait_running(names, opts.ready_timeout_s)
    return names


def wait_running(names: list[str], timeout_s: float) -> None:
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        states = {n: (apps[n].status if n in apps else "NOT_STARTED") for n in names}
        failed = {
            n: apps[n].message
            for n in names
            if n in apps and apps[n].status in ("DEPLOY_FAILED", "UNHEALTHY")
        }
        if failed:
            raise Unavailable(f"serve apps failed to deploy: {failed}")
        if all(s == "RUNNING" for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise Unavailable(f"serve apps not RUNNING after {timeout_s:.0f} s: {states}")
        time.sleep(0.5)


def shutdown() -> None:
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()
