"""Costs, workloads, the per-render task graph and GPU splits of the capacity model (see the package)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lihq.errors import InvalidInput

GPU_STAGES = ("tts", "fomm", "wav2lip", "gfpgan", "qvi", "modnet")
CPU_STAGE = "media"
OPS = {
    "tts.synthesize": "tts",
    "media.prepare": "media",
    "media.driver": "media",
    "fomm.animate": "fomm",
    "wav2lip.sync": "wav2lip",
    "gfpgan.restore": "gfpgan",
    "gfpgan.final": "gfpgan",
    "qvi.interpolate": "qvi",
    "modnet.matte": "modnet",
    "media.encode": "media",
}


@dataclass(frozen=True)
class OpCost:
    per_segment_s: float = 0.0
    per_render_s: float = 0.0


@dataclass(frozen=True)
class StageCost:
    ops: Mapping[str, OpCost]
    replicas_per_gpu: float = 1.0
    placeholder: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    stages: Mapping[str, StageCost]
    source: str = ""

    def op(self, op: str) -> OpCost:
        stage = self.stages.get(OPS[op])
        return stage.ops.get(op, OpCost()) if stage else OpCost()


@dataclass(frozen=True)
class ControlPlane:
    """What the orchestrator itself sustains (bench/control_plane_bench.py): stage tasks scheduled per
    second by one orchestrator replica (render actor process), plus a fixed cost per render (creation
    and state writes). 0 tasks/s: not measured, not modelled."""

    tasks_per_s_per_replica: float = 0.0
    per_render_ms: float = 0.0
    replicas: int = 1
    source: str = ""


@dataclass(frozen=True)
class Costs:
    profiles: Mapping[str, Profile]
    segment_frames: int = 50
    fps: float = 25.0
    control_plane: ControlPlane = ControlPlane()

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise InvalidInput(f"no cost profile {name!r}; known: {sorted(self.profiles)}")
        return self.profiles[name]


def load_costs(source: Path | str | Mapping[str, Any]) -> Costs:
    """Costs from a YAML path, YAML text or a mapping (unknown ops and keys are refused)."""
    raw = (
        source
        if isinstance(source, Mapping)
        else yaml.safe_load(source.read_text() if isinstance(source, Path) else source)
    )
    profiles = {}
    for pname, p in (raw.get("profiles") or {}).items():
        stages = {}
        for sname, s in (p.get("stages") or {}).items():
            if sname not in (*GPU_STAGES, CPU_STAGE):
                raise InvalidInput(f"costs: profile {pname}: unknown stage {sname!r}")
            ops = {}
            for oname, o in (s.get("ops") or {}).items():
                if OPS.get(oname) != sname:
                    raise InvalidInput(f"costs: {pname}.{sname}: unknown op {oname!r} for this stage")
                ops[oname] = OpCost(float(o.get("per_segment_s", 0)), float(o.get("per_render_s", 0)))
            stages[sname] = StageCost(ops, float(s.get("replicas_per_gpu", 1)), bool(s.get("placeholder")))
        profiles[pname] = Profile(pname, stages, str(p.get("source", "")))
    cp = raw.get("control_plane") or {}
    unknown = sorted(set(cp) - {"tasks_per_s_per_replica", "per_render_ms", "replicas", "source"})
    if unknown:
        raise InvalidInput(f"costs: control_plane: unknown keys {unknown}")
    control = ControlPlane(
        float(cp.get("tasks_per_s_per_replica", 0)),
        float(cp.get("per_render_ms", 0)),
        int(cp.get("replicas", 1)),
        str(cp.get("source", "")),
    )
    if control.tasks_per_s_per_replica < 0 or control.per_render_ms < 0 or control.replicas < 1:
        raise InvalidInput("costs: control_plane: rates and costs must be >= 0, replicas >= 1")
    return Costs(profiles, int(raw.get("segment_frames", 50)), float(raw.get("fps", 25.0)), control)


@dataclass(frozen=True)
class Workload:
    """Open (videos_per_hour, Poisson arrivals) or closed (batch of N at t=0, `concurrency` at a time)."""

    mean_length_s: float = 30.0
    videos_per_hour: float | None = None
    batch: int | None = None
    concurrency: int = 1_000_000
    passes: int = 2
    interpolate: int = 0
    background: bool = False
    text: bool = False
    length_dist: str = "fixed"  # "fixed" | "exp"
    renders: int = 200  # open mode: at least this many arrivals (more when 4 latencies need more)
    max_renders: int = 5000
    seed: int = 0
    policy: str = "oldest"  # "oldest" render first | "fifo" by readiness

    def __post_init__(self) -> None:
        if (self.videos_per_hour is None) == (self.batch is None):
            raise InvalidInput("give exactly one of videos_per_hour (open) or batch (closed)")
        if self.passes not in (1, 2) or self.interpolate < 0 or self.mean_length_s <= 0:
            raise InvalidInput("passes must be 1 or 2, interpolate >= 0, mean_length_s > 0")
        if self.length_dist not in ("fixed", "exp") or self.policy not in ("oldest", "fifo"):
            raise InvalidInput("length_dist: fixed|exp; policy: oldest|fifo")


def segments_for(length_s: float, costs: Costs) -> int:
    return max(1, math.ceil(round(length_s * costs.fps) / costs.segment_frames))


def chain(w: Workload) -> list[tuple[str, float]]:
    """The per-segment ops in order, with their multipliers."""
    ops = [("media.driver", 1.0), ("fomm.animate", 1.0), ("wav2lip.sync", 1.0)]
    if w.passes == 2:
        ops += [("gfpgan.restore", 1.0), ("fomm.animate", 1.0)]
    ops.append(("gfpgan.final", 1.0))
    if w.interpolate:
        ops.append(("qvi.interpolate", float(w.interpolate)))
    if w.background:
        ops.append(("modnet.matte", float(w.interpolate + 1)))
    return ops


@dataclass(frozen=True)
class Task:
    stage: str
    seconds: float


def render_tasks(
    w: Workload, n_seg: int, gpu: Profile, cpu: Profile
) -> tuple[list[Task], list[list[Task]], Task]:
    """(prep tasks, one chain per segment, encode task) of one render, in replica-seconds."""

    def cost(op: str) -> OpCost:
        return (cpu if OPS[op] == CPU_STAGE else gpu).op(op)

    prep = [Task("media", cost("media.prepare").per_render_s + cost("media.prepare").per_segment_s * n_seg)]
    if w.text:
        c = cost("tts.synthesize")
        prep.append(Task("tts", c.per_render_s + c.per_segment_s * n_seg))
    steps = chain(w)
    for op in dict.fromkeys(op for op, _ in steps):
        if cost(op).per_render_s > 0:
            prep.append(Task(OPS[op], cost(op).per_render_s * sum(1 for o, _ in steps if o == op)))
    seg = [Task(OPS[op], cost(op).per_segment_s * mult) for op, mult in steps]
    enc = cost("media.encode")
    encode = Task("media", enc.per_render_s + enc.per_segment_s * n_seg * (w.interpolate + 1))
    # zero-cost tasks (ops a profile does not price) are dropped: they would only add events
    return [t for t in prep if t.seconds > 0], [[t for t in seg if t.seconds > 0]] * n_seg, encode


def work_per_video(w: Workload, gpu: Profile, cpu: Profile, costs: Costs) -> dict[str, float]:
    """Replica-seconds per video of mean length, per stage (0 for stages the recipe does not use)."""
    prep, segs, enc = render_tasks(w, segments_for(w.mean_length_s, costs), gpu, cpu)
    out = dict.fromkeys((*GPU_STAGES, CPU_STAGE), 0.0)
    for t in [*prep, *(t for s in segs for t in s), enc]:
        out[t.stage] += t.seconds
    return out


@dataclass(frozen=True)
class Allocation:
    gpus: Mapping[str, float]  # per GPU stage (fractions when there are fewer GPUs than stages)
    media_replicas: float  # CPU replicas of the media stage

    def label(self) -> str:
        parts = [f"{s} {round(g, 2):g}" for s, g in self.gpus.items() if g > 0]
        return ", ".join(parts) + f" | media x{self.media_replicas:g}"


def replicas(alloc: Allocation, gpu: Profile) -> dict[str, float]:
    """Replica-equivalents per stage (GPUs x replicas_per_gpu; media: its CPU replicas)."""
    out = {s: g * (gpu.stages[s].replicas_per_gpu if s in gpu.stages else 1.0) for s, g in alloc.gpus.items()}
    return out | {CPU_STAGE: float(alloc.media_replicas)}


def capacity_per_hour(alloc: Allocation, work: Mapping[str, float], gpu: Profile) -> dict[str, float]:
    """Videos/hour each stage could sustain alone (inf for unused stages); the min is the capacity."""
    reps = replicas(alloc, gpu)
    return {s: (3600.0 * reps.get(s, 0.0) / wk if wk > 0 else math.inf) for s, wk in work.items()}


def recommend(
    total_gpus: float, work: Mapping[str, float], gpu: Profile, media_util: float = 0.8
) -> Allocation:
    """Split GPUs so the slowest stage is as fast as possible; size the CPU media pool to match.

    The unit is one replica (1 / replicas_per_gpu of a GPU, its Serve `num_gpus`): one per used stage,
    then each next replica to the current bottleneck while it fits in `total_gpus`. When not even one
    replica per stage fits, stages share the GPUs in proportion to their GPU-seconds per video (smaller
    fractions, time-sliced).
    """
    unit = {s: 1.0 / (gpu.stages[s].replicas_per_gpu if s in gpu.stages else 1.0) for s in GPU_STAGES}
    used = [s for s in GPU_STAGES if work.get(s, 0) > 0]
    if not used:
        raise InvalidInput("the recipe uses no GPU stage with a cost: check the cost profile")
    gpus = dict.fromkeys(GPU_STAGES, 0.0)
    if sum(unit[s] for s in used) <= total_gpus + 1e-9:
        reps = dict.fromkeys(used, 1)
        spent = sum(unit[s] for s in used)
        while True:
            worst = max(used, key=lambda s: work[s] / reps[s])
            if spent + unit[worst] > total_gpus + 1e-9:
                break
            reps[worst] += 1
            spent += unit[worst]
        gpus |= {s: n * unit[s] for s, n in reps.items()}
    else:
        demand = {s: work[s] * unit[s] for s in used}  # GPU-seconds per video
        gpus |= {s: total_gpus * d / sum(demand.values()) for s, d in demand.items()}
    rate = min(gpus[s] / (work[s] * unit[s]) for s in used)  # videos per second the GPUs sustain
    media = max(1, math.ceil(rate * work.get(CPU_STAGE, 0.0) / media_util))
    return Allocation(gpus, media)


# orchestrator tasks beyond the chain's model ops: orchestrator/plan.py makes 7 per segment for passes 2
# (the chain's 6 + the HLS segment, issue #18) plus 8 per-render globals (43 tasks for a 10 s render of
# 5 segments)
PLAN_TASKS_PER_SEGMENT_EXTRA = 1.0
PLAN_GLOBAL_TASKS = 8


def orchestrator_tasks_per_video(w: Workload, costs: Costs) -> float:
    """Stage tasks the orchestrator schedules for one video of mean length (close to orchestrator/plan.py)."""
    per_segment = sum(max(1.0, mult) for _, mult in chain(w)) + PLAN_TASKS_PER_SEGMENT_EXTRA
    return PLAN_GLOBAL_TASKS + segments_for(w.mean_length_s, costs) * per_segment


def control_plane_per_hour(w: Workload, costs: Costs, replicas: int | None = None) -> float:
    """Videos/hour the orchestrator replicas can drive (inf when the control plane is not measured)."""
    cp = costs.control_plane
    if cp.tasks_per_s_per_replica <= 0:
        return math.inf
    n = replicas if replicas is not None else cp.replicas
    seconds = orchestrator_tasks_per_video(w, costs) / cp.tasks_per_s_per_replica + cp.per_render_ms / 1000
    return 3600.0 * n / seconds
