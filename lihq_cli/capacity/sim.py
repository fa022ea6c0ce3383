"""The discrete-event simulation: stage pools, the per-render state machine, the measurement window."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lihq_cli.capacity.model import (
    Allocation,
    Costs,
    InvalidInput,
    Profile,
    Task,
    Workload,
    render_tasks,
    replicas,
    segments_for,
)


@dataclass
class _Pool:
    servers: int
    speed: float  # 1.0 = the measured cost; a fractional GPU share runs slower
    free: int = 0
    busy_s: float = 0.0
    queue: list = field(default_factory=list)


def pools(alloc: Allocation, gpu: Profile) -> dict[str, _Pool]:
    """One pool per stage: c replica-equivalents -> max(1, floor(c)) servers at speed c / servers."""
    out = {}
    for s, c in replicas(alloc, gpu).items():
        n = max(1, math.floor(c + 1e-9))
        out[s] = _Pool(n, c / n if c > 0 else 0.0, n)
    return out


@dataclass(frozen=True)
class SimResult:
    completed: int
    throughput_per_h: float
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    utilisation: Mapping[str, float]
    bottleneck: str
    makespan_s: float
    scale: float = 1.0  # < 1: simulated at this fraction of the cluster and load (see simulate)


@dataclass
class _Render:
    idx: int
    arrival: float
    prep: list[Task]
    chains: list[list[Task]]
    encode: Task
    step: list[int]
    segs_left: int
    prep_left: int = 0
    done: float = -1.0


class _Sim:
    """The event loop. Queue entries: ((priority,), seq, render, kind, segment, task)."""

    def __init__(self, w: Workload, pools_: dict[str, _Pool], window: tuple[float, float]) -> None:
        self.w, self.pools, self.window = w, pools_, window
        self.events: list = []
        self.seq = 0
        self.now = 0.0

    def push_event(self, t: float, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def submit(self, r: _Render, kind: str, seg: int, task: Task) -> None:
        pool = self.pools.get(task.stage)
        if pool is None or pool.speed <= 0:
            raise InvalidInput(f"stage {task.stage} has work in this recipe but no replicas/GPUs")
        self.seq += 1
        prio = r.idx if self.w.policy == "oldest" else self.now
        heapq.heappush(pool.queue, (prio, self.seq, r, kind, seg, task))
        self.dispatch(pool)

    def dispatch(self, pool: _Pool) -> None:
        lo, hi = self.window
        while pool.free > 0 and pool.queue:
            _, _, r, kind, seg, task = heapq.heappop(pool.queue)
            pool.free -= 1
            end = self.now + task.seconds / pool.speed
            pool.busy_s += max(0.0, min(end, hi) - max(self.now, lo))
            self.push_event(end, "done", (r, kind, seg, pool))

    def start(self, r: _Render) -> bool:
        r.arrival, r.prep_left = self.now, len(r.prep)
        for t in r.prep:
            self.submit(r, "prep", -1, t)
        return self._segments(r) if not r.prep else False

    def _segments(self, r: _Render) -> bool:
        for k, c in enumerate(r.chains):
            if c:
                self.submit(r, "seg", k, c[0])
            else:
                r.segs_left -= 1
        return self._encode(r) if r.segs_left == 0 else False

    def _encode(self, r: _Render) -> bool:
        if r.encode.seconds > 0:
            self.submit(r, "encode", -1, r.encode)
            return False
        r.done = self.now
        return True

    def finish(self, r: _Render, kind: str, seg: int) -> bool:
        """Advance render `r` past one finished task; True when the whole render is done."""
        if kind == "prep":
            r.prep_left -= 1
            return self._segments(r) if r.prep_left == 0 else False
        if kind == "seg":
            r.step[seg] += 1
            if r.step[seg] < len(r.chains[seg]):
                self.submit(r, "seg", seg, r.chains[seg][r.step[seg]])
                return False
            r.segs_left -= 1
            return self._encode(r) if r.segs_left == 0 else False
        r.done = self.now
        return True


def critical_path_s(w: Workload, costs: Costs, gpu: Profile, cpu: Profile, alloc: Allocation) -> float:
    """Seconds one render of mean length takes alone on the cluster (no queueing)."""
    speed = {s: p.speed for s, p in pools(alloc, gpu).items()}
    prep, chains, enc = render_tasks(w, segments_for(w.mean_length_s, costs), gpu, cpu)

    def t(task: Task) -> float:
        return task.seconds / speed[task.stage] if speed.get(task.stage) else math.inf

    return max((t(x) for x in prep), default=0.0) + sum(t(x) for x in chains[0]) + t(enc)


def _scaled(w: Workload, alloc: Allocation, max_gpus: float) -> tuple[Workload, Allocation, float]:
    """A big open-mode cluster is simulated at `max_gpus` GPUs with its load scaled alike: same shares
    and utilisations; per-render latency is then an upper bound (larger pools queue less)."""
    total = sum(alloc.gpus.values())
    if w.videos_per_hour is None or total <= max_gpus:
        return w, alloc, 1.0
    f = max_gpus / total
    small = Allocation({s: g * f for s, g in alloc.gpus.items()}, max(1.0, alloc.media_replicas * f))
    return replace(w, videos_per_hour=w.videos_per_hour * f), small, f


def _arrivals(w: Workload, horizon_s: float, rng: random.Random) -> tuple[list[float], float]:
    """(arrival times, start of the measurement window) of an open or closed workload."""
    if w.batch is not None:
        return [0.0] * w.batch, 0.0
    rate = w.videos_per_hour / 3600.0
    n = min(max(w.renders, math.ceil(rate * 4 * horizon_s)), w.max_renders)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append(t)
    return out, min(2 * horizon_s, out[n // 2])


def simulate(
    w: Workload, costs: Costs, gpu: Profile, cpu: Profile, alloc: Allocation, max_gpus: float = 64.0
) -> SimResult:
    """Run the workload on `alloc`. Open mode: arrivals span about 4 single-render latencies; the first
    2 (or half the arrivals) warm up, the rest is measured. Closed mode: the whole batch is measured."""
    w, alloc, scale = _scaled(w, alloc, max_gpus)
    rng = random.Random(w.seed)
    arrivals, w0 = _arrivals(w, critical_path_s(w, costs, gpu, cpu, alloc), rng)
    n = len(arrivals)
    lengths = [w.mean_length_s] * n
    if w.length_dist == "exp":
        lengths = [max(1.0 / costs.fps, rng.expovariate(1.0 / w.mean_length_s)) for _ in range(n)]
    window = (w0, arrivals[-1]) if w.batch is None else (0.0, math.inf)
    sim = _Sim(w, pools(alloc, gpu), window)
    renders = []
    for i, length in enumerate(lengths):
        prep, chains, enc = render_tasks(w, segments_for(length, costs), gpu, cpu)
        renders.append(_Render(i, arrivals[i], prep, chains, enc, [0] * len(chains), len(chains)))
    admitted = min(n, w.concurrency) if w.batch is not None else n
    for r in renders[:admitted]:
        sim.push_event(r.arrival, "arrive", r)
    while sim.events:
        sim.now, _, kind, payload = heapq.heappop(sim.events)
        if kind == "arrive":
            finished = sim.start(payload)
        else:
            r, what, seg, pool = payload
            pool.free += 1
            finished = sim.finish(r, what, seg)
            sim.dispatch(pool)
        if finished and w.batch is not None and admitted < n:
            sim.push_event(sim.now, "arrive", renders[admitted])
            admitted += 1
    return _summarise(renders, sim, w, scale)


def _summarise(renders: list[_Render], sim: _Sim, w: Workload, scale: float) -> SimResult:
    makespan = max(r.done for r in renders)
    lo, hi = sim.window
    hi = makespan if math.isinf(hi) else hi
    span = max(hi - lo, 1e-9)
    measured = [r for r in renders if r.arrival >= lo] or renders
    lat = sorted(r.done - r.arrival for r in measured)
    if w.batch is not None:
        throughput = len(renders) / max(makespan, 1e-9) * 3600.0
    else:  # work done in the window / work per video: far less noisy than counting completions
        done_s = sum(p.busy_s * p.speed for p in sim.pools.values())
        per_video = sum(_work(r) for r in renders) / len(renders)
        throughput = done_s / per_video / span * 3600.0 / scale
    util = {s: p.busy_s / (p.servers * span) for s, p in sim.pools.items()}
    return SimResult(
        completed=len(renders),
        throughput_per_h=throughput,
        latency_mean_s=sum(lat) / len(lat),
        latency_p50_s=_pct(lat, 0.5),
        latency_p95_s=_pct(lat, 0.95),
        utilisation=util,
        bottleneck=max(util, key=lambda s: util[s]),
        makespan_s=makespan,
        scale=scale,
    )


def _work(r: _Render) -> float:
    """Replica-seconds of all tasks of one render."""
    return sum(t.seconds for t in r.prep) + sum(t.seconds for c in r.chains for t in c) + r.encode.seconds


def _pct(sorted_values: list[float], q: float) -> float:
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]
