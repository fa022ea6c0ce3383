"""Ray Serve deployment of InterpolationService (app "qvi"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the builder named in Serve configs (`import_path: services.qvi.deployment:build_app`).
Device, precision, batch size and the replica's GPU/CPU share come from typed app args; store
settings and the weights dir from the replica's environment (`LIHQ_*`, lihq.config), which `args`
may override. Missing weights do not stop the replica: each call answers FAILED_PRECONDITION naming
`lihq weights fetch qvi` until the file is there (it is loaded on the next call).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from ray import serve
from ray.serve import Application

from lihq.appargs import AppArgs, StageDeployment, deployment_options
from lihq.config import WeightsConfig
from lihq.torchutil import check_precision
from services.qvi.runner import QVIRunner, QVIRunnerConfig, model_path
from services.qvi.servicer import InterpolationServicer


@dataclass(frozen=True)
class QVIAppArgs(AppArgs):
    """Typed app arguments (Serve config `args:`): the runner's settings (QVIRunnerConfig: device,
    precision, batch_size, max_side, model_path) + the weights dir + the replica's GPU/CPU share."""

    app: ClassVar[str] = "qvi"
    runner: QVIRunnerConfig = field(default_factory=QVIRunnerConfig)
    num_gpus: float = 0.25  # the replica's GPU share; 0 on a CPU-only machine
    num_cpus: float = 1.0
    weights_dir: str | None = None  # default: LIHQ_WEIGHTS_DIR

    def check(self) -> None:
        check_precision(self.runner.precision)
        if self.runner.batch_size < 1 or self.num_gpus < 0 or self.num_cpus < 0:
            raise ValueError(f"qvi app: batch_size must be >= 1 and num_gpus/num_cpus >= 0, got {self}")

    def weights(self) -> Path:
        return Path(self.weights_dir) if self.weights_dir else WeightsConfig.from_env().dir

    def load_runner(self) -> QVIRunner:
        cfg = self.runner
        if cfg.model_path is None:  # resolved on the replica, where the weights are
            cfg = replace(cfg, model_path=model_path(self.weights()))
        return QVIRunner(cfg)

    def servicer_args(self) -> tuple[Any, ...]:
        return self.store(), None, self.load_runner


@serve.deployment(
    **deployment_options("InterpolationService", max_ongoing=2, max_queued=32, target_ongoing=1)
)
class QVIDeployment(StageDeployment, InterpolationServicer):
    def __init__(self, args: QVIAppArgs) -> None:
        super().__init__(args)
        self.warm_up()


def build_app(args: dict[str, Any] | None = None) -> Application:
    parsed = QVIAppArgs.parse(args)
    actor = {"num_cpus": parsed.num_cpus, "num_gpus": parsed.num_gpus}
    return QVIDeployment.options(ray_actor_options=actor).bind(parsed)
