"""Ray Serve deployment of MediaService (app "media"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.media.deployment:build_app`). Store settings come from the replica's
environment (`LIHQ_*`, see lihq.config), so credentials travel as env/Secrets, never in Serve configs;
`args` may override the non-secret ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ray import serve
from ray.serve import Application

from lihq.appargs import AppArgs, StageDeployment, deployment_options
from services.media.runner import MediaRunner, MediaRunnerConfig
from services.media.servicer import MediaServicer


@dataclass(frozen=True)
class MediaAppArgs(AppArgs):
    """Typed app arguments (Serve config `args:`): the runner's limits (MediaRunnerConfig) + a workdir."""

    app: ClassVar[str] = "media"
    runner: MediaRunnerConfig = field(default_factory=MediaRunnerConfig)
    workdir: str | None = None

    def servicer_args(self) -> tuple[Any, ...]:
        return self.store(), MediaRunner(self.runner), Path(self.workdir) if self.workdir else None


@serve.deployment(**deployment_options("MediaService", num_gpus=0))
class MediaDeployment(StageDeployment, MediaServicer):
    pass


def build_app(args: dict[str, Any] | None = None) -> Application:
    return MediaDeployment.bind(MediaAppArgs.parse(args))
