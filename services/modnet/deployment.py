"""Ray Serve deployment of MattingService (app "modnet"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.modnet.deployment:build_app`). Weights come from `args.weights` (an explicit
checkpoint path) or the registry (`LIHQ_WEIGHTS_DIR`, entry `modnet`); they are loaded on the first
call, so a replica without them starts and answers FAILED_PRECONDITION naming `lihq weights fetch
modnet`. Store settings come from the replica's environment (`LIHQ_*`, see lihq.config).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from lihq import log as lihq_log
from lihq.appargs import checked_args
from lihq.config import WeightsConfig
from lihq.errors import LihqError
from lihq.storage import open_app_store
from lihq.weights import require
from services.modnet.runner import ModnetConfig, ModnetRunner
from services.modnet.servicer import MattingServicer


@dataclass(frozen=True)
class ModnetAppArgs:
    """Typed app arguments (Serve config `args:`); runner settings as in ModnetConfig."""

    bucket: str | None = None
    prefix: str | None = None
    workdir: str | None = None
    weights: str | None = None  # explicit checkpoint path; default: the registry's modnet file
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 16
    ref_size: int = 512
    channels_last: bool = False
    compile: bool = False

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> ModnetAppArgs:
        args = checked_args("modnet", cls, args)
        parsed = cls(**args)
        try:
            parsed.runner_config()
        except LihqError as exc:
            raise ValueError(f"modnet app: {exc.message}") from exc
        return parsed

    def runner_config(self) -> ModnetConfig:
        return ModnetConfig(
            device=self.device,
            precision=self.precision,
            batch_size=int(self.batch_size),
            ref_size=int(self.ref_size),
            channels_last=bool(self.channels_last),
            compile=bool(self.compile),
        )

    def load_runner(self) -> ModnetRunner:
        """The runner from the explicit path or the registry (WeightsMissing when absent)."""
        path = Path(self.weights) if self.weights else require("modnet", WeightsConfig.from_env())
        return ModnetRunner.from_checkpoint(path, self.runner_config())  # type: ignore[arg-type]


@serve.deployment(
    name="MattingService",
    ray_actor_options={"num_cpus": 1, "num_gpus": 0.25},
    max_ongoing_requests=4,
    max_queued_requests=64,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2},
)
class MattingDeployment(MattingServicer):
    def __init__(self, args: ModnetAppArgs) -> None:
        lihq_log.configure()
        store = open_app_store(args.bucket, args.prefix)
        workdir = Path(args.workdir) if args.workdir else None
        super().__init__(store, args.load_runner, workdir)


def build_app(args: dict[str, Any] | None = None) -> Application:
    return MattingDeployment.bind(ModnetAppArgs.parse(args))
