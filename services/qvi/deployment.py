"""Ray Serve deployment of InterpolationService (app "qvi"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the builder named in Serve configs (`import_path: services.qvi.deployment:build_app`).
Device, precision, batch size and the replica's GPU/CPU share come from typed app args; store
settings and the weights dir from the replica's environment (`LIHQ_*`, lihq.config), which `args`
may override. Missing weights do not stop the replica: each call answers FAILED_PRECONDITION naming
`lihq weights fetch qvi` until the file is there (it is loaded on the next call).
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
from lihq.storage import open_app_store
from lihq.torchutil import check_precision
from services.qvi.runner import QVIRunner, QVIRunnerConfig, model_path
from services.qvi.servicer import InterpolationServicer


@dataclass(frozen=True)
class QVIAppArgs:
    """Typed app arguments (Serve config `args:`)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # default for calls that do not ask: fp32 | bf16 | fp16
    batch_size: int = 4  # images per forward pass
    num_gpus: float = 0.25  # the replica's GPU share; 0 on a CPU-only machine
    num_cpus: float = 1.0
    max_side: int = 4096
    weights_dir: str | None = None  # default: LIHQ_WEIGHTS_DIR
    bucket: str | None = None
    prefix: str | None = None

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> QVIAppArgs:
        args = checked_args("qvi", cls, args)
        out = cls(**args)
        check_precision(out.precision)
        if out.batch_size < 1 or out.num_gpus < 0 or out.num_cpus < 0:
            raise ValueError(f"qvi app: batch_size must be >= 1 and num_gpus/num_cpus >= 0, got {out}")
        return out

    def weights(self) -> Path:
        return Path(self.weights_dir) if self.weights_dir else WeightsConfig.from_env().dir


def runner_loader(args: QVIAppArgs) -> Any:
    def load() -> QVIRunner:
        cfg = QVIRunnerConfig(
            model_path=model_path(args.weights()),
            device=args.device,
            precision=args.precision,
            batch_size=args.batch_size,
            max_side=args.max_side,
        )
        return QVIRunner(cfg)

    return load


@serve.deployment(
    name="InterpolationService",
    ray_actor_options={"num_cpus": 1, "num_gpus": 0.25},
    max_ongoing_requests=2,
    max_queued_requests=32,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 1},
)
class QVIDeployment(InterpolationServicer):
    def __init__(self, args: QVIAppArgs) -> None:
        lihq_log.configure()
        store = open_app_store(args.bucket, args.prefix)
        super().__init__(store, loader=runner_loader(args))
        self.warm_up()


def build_app(args: dict[str, Any] | None = None) -> Application:
    parsed = QVIAppArgs.parse(args)
    actor = {"num_cpus": parsed.num_cpus, "num_gpus": parsed.num_gpus}
    return QVIDeployment.options(ray_actor_options=actor).bind(parsed)
