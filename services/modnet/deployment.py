"""Ray Serve deployment of MattingService (app "modnet"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.modnet.deployment:build_app`). Weights come from `args.weights` (an explicit
checkpoint path) or the registry (`LIHQ_WEIGHTS_DIR`, entry `modnet`); they are loaded on the first
call, so a replica without them starts and answers FAILED_PRECONDITION naming `lihq weights fetch
modnet`. Store settings come from the replica's environment (`LIHQ_*`, see lihq.config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ray import serve
from ray.serve import Application

from lihq.appargs import AppArgs, StageDeployment, deployment_options
from lihq.config import WeightsConfig
from lihq.weights import require
from services.modnet.runner import ModnetConfig, ModnetRunner
from services.modnet.servicer import MattingServicer


@dataclass(frozen=True)
class ModnetAppArgs(AppArgs):
    """Typed app arguments (Serve config `args:`): the runner's settings (ModnetConfig) + the weights
    file + a workdir."""

    app: ClassVar[str] = "modnet"
    runner: ModnetConfig = field(default_factory=ModnetConfig)
    workdir: str | None = None
    weights: str | None = None  # explicit checkpoint path; default: the registry's modnet file

    def load_runner(self) -> ModnetRunner:
        """The runner from the explicit path or the registry (WeightsMissing when absent)."""
        path = Path(self.weights) if self.weights else require("modnet", WeightsConfig.from_env())
        return ModnetRunner.from_checkpoint(path, self.runner)  # type: ignore[arg-type]

    def servicer_args(self) -> tuple[Any, ...]:
        return self.store(), self.load_runner, Path(self.workdir) if self.workdir else None


@serve.deployment(**deployment_options("MattingService"))
class MattingDeployment(StageDeployment, MattingServicer):
    pass


def build_app(args: dict[str, Any] | None = None) -> Application:
    return MattingDeployment.bind(ModnetAppArgs.parse(args))
