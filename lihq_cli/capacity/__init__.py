"""Capacity model: how many videos an hour N GPUs render, how fast, and where the bottleneck is.

A discrete-event simulation of the orchestrator's segment scheduling (orchestrator/plan.py, simplified):

    per render, first (in parallel):  tts (text speech: per_render + S * per_segment) and every op's
                                      per-render part (media.prepare, fomm keypoints, the mel, ...)
    per segment, a chain:             media.driver -> fomm.animate -> wav2lip.sync -> [gfpgan.restore ->
                                      fomm.animate, when passes = 2] -> gfpgan.final -> [qvi.interpolate
                                      x k] -> [modnet.matte x (k+1), with a background]
    per render, last:                 media.encode (per_render + S * (k+1) * per_segment)

with S = ceil(length * fps / segment_frames). Segments of a render run in parallel (pipelined across
stages); each stage is a pool of replicas fed from one queue, oldest render first (or FIFO): the
orchestrator bounds the calls in flight per stage, so a replica is one server. Ignored: neighbour-
segment context dependencies, network and store time (fold them into the measured costs), and CPU
contention between replicas on one host (bench/capacity_media.py shows what that costs on 2 cores).

Costs (bench/capacity_costs.yaml) are seconds of one replica per op, per device profile. A GPU stage
given g GPUs runs g * replicas_per_gpu replicas; a fractional share (fewer GPUs than stages) runs one
replica at that fraction of its speed. The media stage runs on CPU replicas, counted separately.
"""

from lihq_cli.capacity.model import (
    CPU_STAGE,
    GPU_STAGES,
    OPS,
    Allocation,
    ControlPlane,
    Costs,
    OpCost,
    Profile,
    StageCost,
    Task,
    Workload,
    capacity_per_hour,
    chain,
    control_plane_per_hour,
    load_costs,
    orchestrator_tasks_per_video,
    recommend,
    render_tasks,
    replicas,
    segments_for,
    work_per_video,
)
from lihq_cli.capacity.sim import SimResult, critical_path_s, simulate

__all__ = [
    "CPU_STAGE",
    "GPU_STAGES",
    "OPS",
    "Allocation",
    "ControlPlane",
    "Costs",
    "OpCost",
    "Profile",
    "SimResult",
    "StageCost",
    "Task",
    "Workload",
    "capacity_per_hour",
    "chain",
    "control_plane_per_hour",
    "critical_path_s",
    "load_costs",
    "orchestrator_tasks_per_video",
    "recommend",
    "render_tasks",
    "replicas",
    "segments_for",
    "simulate",
    "work_per_video",
]
