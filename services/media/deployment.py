"""Ray Serve deployment of MediaService (app "media"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.media.deployment:build_app`). Store settings come from the replica's
environment (`LIHQ_*`, see lihq.config), so credentials travel as env/Secrets, never in Serve configs;
`args` may override the non-secret ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from lihq import log as lihq_log
from lihq.appargs import checked_args
from lihq.storage import open_app_store
from services.media.runner import MediaRunner, MediaRunnerConfig
from services.media.servicer import MediaServicer


@dataclass(frozen=True)
class MediaAppArgs:
    """Typed app arguments (Serve config `args:`)."""

    bucket: str | None = None
    prefix: str | None = None
    workdir: str | None = None
    max_duration_s: float = 3600.0

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> MediaAppArgs:
        args = checked_args("media", cls, args)
        return cls(**args)


@serve.deployment(
    name="MediaService",
    ray_actor_options={"num_cpus": 1, "num_gpus": 0},
    max_ongoing_requests=4,
    max_queued_requests=64,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2},
)
class MediaDeployment(MediaServicer):
    def __init__(self, args: MediaAppArgs) -> None:
        lihq_log.configure()
        store = open_app_store(args.bucket, args.prefix)
        runner = MediaRunner(MediaRunnerConfig(max_duration_s=args.max_duration_s))
        super().__init__(store, runner, Path(args.workdir) if args.workdir else None)


def build_app(args: dict[str, Any] | None = None) -> Application:
    return MediaDeployment.bind(MediaAppArgs.parse(args))
