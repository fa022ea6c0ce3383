"""Ray Serve deployment of FaceRestorationService (app "gfpgan"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.gfpgan.deployment:build_app`). Weights come from `args.weights_dir` or
`LIHQ_WEIGHTS_DIR` (read by lihq.config); nets are loaded on the first call that needs them, so a
replica without weights starts, answers health checks, and fails calls with FAILED_PRECONDITION
naming the `lihq weights fetch` command. Store settings come from the replica's environment.

GPU fraction: GFPGAN is the heaviest stage of a render (GFPGAN + ParseNet ~0.9 TFLOP per face,
RealESRGAN x2 on top for the background), so a replica asks for half a GPU by default; override
`ray_actor_options` in the Serve config to pack more replicas per GPU or to run on CPU (num_gpus 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ray import serve
from ray.serve import Application

from lihq.appargs import AppArgs, StageDeployment, deployment_options
from services.gfpgan.runner import GfpganConfig, GfpganRunner
from services.gfpgan.servicer import FaceRestorationServicer


@dataclass(frozen=True)
class GfpganAppArgs(AppArgs):
    """Typed app arguments (Serve config `args:`): the runner's settings, GfpganConfig (weights_dir,
    device, precision, batch sizes, paste workers, …), each defined there once."""

    app: ClassVar[str] = "gfpgan"
    runner: GfpganConfig = field(default_factory=GfpganConfig)

    def check(self) -> None:
        self.runner.validate()

    def servicer_args(self) -> tuple[Any, ...]:
        return self.store(), GfpganRunner(self.runner)


@serve.deployment(
    **deployment_options(
        "FaceRestorationService", num_cpus=2, num_gpus=0.5, max_ongoing=2, max_queued=32, target_ongoing=1
    )
)
class FaceRestorationDeployment(StageDeployment, FaceRestorationServicer):
    pass


def build_app(args: dict[str, Any] | None = None) -> Application:
    return FaceRestorationDeployment.bind(GfpganAppArgs.parse(args))
