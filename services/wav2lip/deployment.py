"""Ray Serve deployment of LipSyncService (app "wav2lip"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.wav2lip.deployment:build_app`). Store settings and the weights dir come from
the replica's environment (`LIHQ_*`, see lihq.config); `args` (typed, below) carry the runtime
settings: device, precision, batch sizes, explicit weight paths. GPU fraction: 0.25 per replica
(Wav2Lip at batch 128 and S3FD at batch 16 on 256² frames need well under 10 GB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ray import serve
from ray.serve import Application

from lihq.appargs import AppArgs, StageDeployment, deployment_options
from services.wav2lip.runner import CHECKPOINTS, Wav2LipRunner, Wav2LipRunnerConfig
from services.wav2lip.servicer import LipSyncServicer


@dataclass(frozen=True)
class Wav2LipAppArgs(AppArgs):
    """Typed app arguments (Serve config `args:`): the runner's settings (Wav2LipRunnerConfig:
    device, precision, batch sizes, weights_dir, explicit weight paths, …) + preloading."""

    app: ClassVar[str] = "wav2lip"
    runner: Wav2LipRunnerConfig = field(default_factory=Wav2LipRunnerConfig)
    preload: tuple[str, ...] = ()  # checkpoints to load at start ("wav2lip_gan", "s3fd", ...)

    def check(self) -> None:
        if not all(v in (*CHECKPOINTS, "s3fd") for v in self.preload):
            raise ValueError(f"wav2lip app: preload must list names of {[*CHECKPOINTS, 's3fd']}")

    def servicer_args(self) -> tuple[Any, ...]:
        runner = Wav2LipRunner(self.runner)
        runner.preload(self.preload)
        return self.store(), runner


@serve.deployment(**deployment_options("LipSyncService"))
class LipSyncDeployment(StageDeployment, LipSyncServicer):
    pass


def build_app(args: dict[str, Any] | None = None) -> Application:
    return LipSyncDeployment.bind(Wav2LipAppArgs.parse(args))
