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
from services.gfpgan.runner import GfpganConfig, GfpganRunner
from services.gfpgan.servicer import FaceRestorationServicer


@dataclass(frozen=True)
class GfpganAppArgs:
    """Typed app arguments (Serve config `args:`); runner settings as in GfpganConfig."""

    bucket: str | None = None
    prefix: str | None = None
    weights_dir: str | None = None  # default: LIHQ_WEIGHTS_DIR
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 8
    detect_batch_size: int = 16
    pad_batches: bool = True
    paste_workers: int = 2
    max_faces: int = 8
    bg_tile: int = 400
    max_frames: int = 1000

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> GfpganAppArgs:
        args = checked_args("gfpgan", cls, args)
        parsed = cls(**args)
        try:
            parsed.runner_config().validate()
        except LihqError as exc:
            raise ValueError(f"gfpgan app: {exc.message}") from exc
        return parsed

    def runner_config(self) -> GfpganConfig:
        weights = Path(self.weights_dir) if self.weights_dir else WeightsConfig.from_env().dir
        return GfpganConfig(
            weights_dir=weights,
            device=self.device,
            precision=self.precision,
            batch_size=int(self.batch_size),
            detect_batch_size=int(self.detect_batch_size),
            pad_batches=bool(self.pad_batches),
            paste_workers=int(self.paste_workers),
            max_faces=int(self.max_faces),
            bg_tile=int(self.bg_tile),
            max_frames=int(self.max_frames),
        )


@serve.deployment(
    name="FaceRestorationService",
    ray_actor_options={"num_cpus": 2, "num_gpus": 0.5},
    max_ongoing_requests=2,
    max_queued_requests=32,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 1},
)
class FaceRestorationDeployment(FaceRestorationServicer):
    def __init__(self, args: GfpganAppArgs) -> None:
        lihq_log.configure()
        store = open_app_store(args.bucket, args.prefix)
        super().__init__(store, GfpganRunner(args.runner_config()))


def build_app(args: dict[str, Any] | None = None) -> Application:
    return FaceRestorationDeployment.bind(GfpganAppArgs.parse(args))
