"""Ray Serve deployment of LipSyncService (app "wav2lip"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.wav2lip.deployment:build_app`). Store settings and the weights dir come from
the replica's environment (`LIHQ_*`, see lihq.config); `args` (typed, below) carry the runtime
settings: device, precision, batch sizes, explicit weight paths. GPU fraction: 0.25 per replica
(Wav2Lip at batch 128 and S3FD at batch 16 on 256² frames need well under 10 GB).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from lihq import log as lihq_log
from lihq.appargs import checked_args
from lihq.storage import open_app_store
from services.wav2lip.runner import CHECKPOINTS, Wav2LipRunner, Wav2LipRunnerConfig
from services.wav2lip.servicer import LipSyncServicer


@dataclass(frozen=True)
class Wav2LipAppArgs:
    """Typed app arguments (Serve config `args:`)."""

    bucket: str | None = None
    prefix: str | None = None
    device: str = "auto"
    precision: str = "fp32"  # default for requests with PRECISION_UNSPECIFIED
    batch_size: int = 128
    detect_batch_size: int = 16
    channels_last: bool = False
    allow_tf32: bool = False
    weights_dir: str | None = None  # default: LIHQ_WEIGHTS_DIR
    wav2lip_path: str | None = None
    wav2lip_gan_path: str | None = None
    s3fd_path: str | None = None
    preload: tuple[str, ...] = ()  # checkpoints to load at start ("wav2lip_gan", "s3fd", ...)

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> Wav2LipAppArgs:
        args = checked_args("wav2lip", cls, args)
        hints = typing.get_type_hints(cls)
        for name, value in args.items():
            if name == "preload":
                if isinstance(value, str) or not all(v in (*CHECKPOINTS, "s3fd") for v in value):
                    raise ValueError(f"wav2lip app: preload must list names of {[*CHECKPOINTS, 's3fd']}")
                args[name] = tuple(value)
                continue
            allowed = typing.get_args(hints[name]) or (hints[name],)
            if type(value) not in allowed:
                names = ", ".join(t.__name__ for t in allowed)
                raise ValueError(f"wav2lip app: {name} must be of type {names}, got {value!r}")
        return cls(**args)

    def runner_config(self) -> Wav2LipRunnerConfig:
        return Wav2LipRunnerConfig(
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
            detect_batch_size=self.detect_batch_size,
            channels_last=self.channels_last,
            allow_tf32=self.allow_tf32,
            weights_dir=Path(self.weights_dir) if self.weights_dir else None,
            wav2lip_path=self.wav2lip_path,
            wav2lip_gan_path=self.wav2lip_gan_path,
            s3fd_path=self.s3fd_path,
        )


@serve.deployment(
    name="LipSyncService",
    ray_actor_options={"num_cpus": 1, "num_gpus": 0.25},
    max_ongoing_requests=4,
    max_queued_requests=64,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2},
)
class LipSyncDeployment(LipSyncServicer):
    def __init__(self, args: Wav2LipAppArgs) -> None:
        lihq_log.configure()
        store = open_app_store(args.bucket, args.prefix)
        runner = Wav2LipRunner(args.runner_config())
        runner.preload(args.preload)
        super().__init__(store, runner)


def build_app(args: dict[str, Any] | None = None) -> Application:
    return LipSyncDeployment.bind(Wav2LipAppArgs.parse(args))
