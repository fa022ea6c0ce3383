"""RenderService as a Ray Serve app ("orchestrator"), calling the stage apps over gRPC.

Stage addresses come from app args (`stages: {app: {address, application}}`), defaulting to the Serve
gRPC proxy this app runs behind, so a model can be swapped by editing one stage's entry.

Two ways to run renders:
- default: in the RenderService replica that created them. Run ONE replica (a second would also
  resume them); a replica that starts (after a crash, an upgrade, or `lihq host --app orchestrator`
  restarted) resumes every unfinished render (orchestrator/README.md).
- `render_actors: true`: each render in its own named, detached, restartable Ray actor
  (orchestrator/actors.py); the replicas are stateless, so any number may run. A starting replica
  launches the actors of unfinished renders that have none (Ray keeps one actor per name).

Args (all optional): proxy_address, stages, concurrency {stage: n}, deadline_s {stage: s},
max_running, max_queued, max_renders_per_request, render_actors,
retry {attempts, base_s, max_s, deploy_wait_s} (backoff on UNAVAILABLE / RESOURCE_EXHAUSTED /
DEADLINE_EXCEEDED; a stage app still deploying is retried up to deploy_wait_s, default 600),
synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ray import serve
from ray.serve import Application

from lihq import log as lihq_log
from lihq.appargs import checked_args
from lihq.config import StoreConfig, synthetic_weights_enabled
from lihq.grpc.client import StageEndpoint
from lihq.stages import PIPELINE_APPS, StageEndpoints
from lihq.storage import open_store
from orchestrator.core import Admission, Orchestrator
from orchestrator.executor import GrpcExecutor
from orchestrator.scheduler import Limits, RetryPolicy
from orchestrator.servicer import RenderServicer

STAGE_APPS = PIPELINE_APPS  # the stage apps a render calls (lihq/stages.py REGISTRY)


@dataclass(frozen=True)
class OrchestratorArgs:
    proxy_address: str = ""  # empty: LIHQ_STAGES_ADDRESS, else 127.0.0.1:9000
    stages: dict[str, dict[str, str]] = field(default_factory=dict)
    concurrency: dict[str, int] = field(default_factory=dict)
    deadline_s: dict[str, float] = field(default_factory=dict)  # per stage; default 900 s
    retry: dict[str, float] = field(default_factory=dict)  # {attempts, base_s, max_s}; see RetryPolicy
    synthetic: bool = False
    # admission (orchestrator.core.Admission); 0: LIHQ_MAX_RUNNING_RENDERS etc., else the default
    max_running: int = 0
    max_queued: int = 0
    max_renders_per_request: int = 0
    # each render in its own named, detached, restartable Ray actor (orchestrator/actors.py): the
    # RenderService replicas are then stateless and may be scaled (num_replicas / autoscaling)
    render_actors: bool = False

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> OrchestratorArgs:
        args = checked_args("orchestrator", cls, args)
        out = cls(**args)
        out.retry_policy()  # a bad retry block fails the deploy, not the first render
        out.admission()
        return out

    def retry_policy(self) -> RetryPolicy:
        unknown = sorted(set(self.retry) - {"attempts", "base_s", "max_s", "deploy_wait_s"})
        if unknown:
            raise ValueError(
                f"orchestrator app: unknown retry keys {unknown}; known: attempts, base_s, max_s, "
                "deploy_wait_s"
            )
        policy = RetryPolicy(**{k: (int(v) if k == "attempts" else float(v)) for k, v in self.retry.items()})
        if policy.attempts < 1 or policy.base_s < 0 or policy.max_s < policy.base_s:
            raise ValueError(
                f"orchestrator app: retry {self.retry} needs attempts >= 1 and 0 <= base_s <= max_s"
            )
        return policy

    def admission(self) -> Admission:
        given = {
            k: int(getattr(self, k))
            for k in ("max_running", "max_queued", "max_renders_per_request")
            if getattr(self, k)
        }
        bad = [k for k, v in given.items() if v < 1]
        if bad:
            raise ValueError(f"orchestrator app: {bad} must be at least 1 (or 0 for the default)")
        return Admission.from_env(**given)

    def endpoints(self, env: dict[str, str] | None = None) -> dict[str, StageEndpoint]:
        """Per stage: app args > LIHQ_STAGE_<NAME>_* (the `lihq-stages` ConfigMap) > the default proxy.

        So a model is swapped by editing one stage's entry in either place (lihq/stages.py).
        """
        base = StageEndpoints.from_env(env)
        default = self.proxy_address or base.default_address
        out = {}
        for app in STAGE_APPS:
            ep = base.overrides.get(app) or StageEndpoint(default, app)
            e = self.stages.get(app, {})
            out[app] = StageEndpoint(e.get("address", ep.address), e.get("application", ep.application))
        return out


def make_orchestrator(args: OrchestratorArgs) -> Orchestrator:
    from orchestrator import adapters_models  # noqa: F401  (registers the model-stage adapters)

    executor = GrpcExecutor(args.endpoints())
    return Orchestrator(
        open_store(StoreConfig.from_env()),
        executor,
        Limits(concurrency=args.concurrency, deadline_s=args.deadline_s),
        args.retry_policy(),
        # `lihq serve --weights synthetic` / `lihq render --weights synthetic` set LIHQ_SYNTHETIC_WEIGHTS
        synthetic=args.synthetic or synthetic_weights_enabled(),
        admission=args.admission(),
    )


@serve.deployment(
    name="RenderService", num_replicas=1, ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64
)
class RenderDeployment(RenderServicer):
    async def __init__(self, args: OrchestratorArgs) -> None:
        """Async, so the renders a previous replica left unfinished resume on this replica's event loop
        as soon as it starts (Serve runs async constructors on the replica's loop)."""
        lihq_log.configure()
        if args.render_actors:
            import functools

            from orchestrator.actors import ActorOrchestrator

            super().__init__(ActorOrchestrator(functools.partial(make_orchestrator, args)))
        else:
            super().__init__(make_orchestrator(args))
        resumed = await self.orch.resume_all()
        if resumed:
            lihq_log.stage_logger("orchestrator").info(
                "resumed %d unfinished renders: %s", len(resumed), resumed
            )


def build_app(args: dict[str, Any] | None = None) -> Application:
    return RenderDeployment.bind(OrchestratorArgs.parse(args))
