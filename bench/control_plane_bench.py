"""Control-plane figures (issue #13): what the orchestrator itself costs, with stages that answer at once.

Run: `python bench/control_plane_bench.py [--json] [--parts per_task,one_process,replicas,list,create]`
(~2-4 minutes on 2 cores). Everything is the real code — Orchestrator + Scheduler + RenderStore on a
FileStore (on disk under --store-dir, fsync on every write, as `lihq serve` runs it), RenderService on
a real gRPC server for the listing and creation parts — except the stages: an in-process executor
answers every task at once with keys, as the stages would, so what is measured is the control plane.

  per_task_ms[L]          one render of L seconds of speech (segment_frames 50: L=10 s -> 43 tasks,
                          3600 s -> 12,608): orchestrator wall from CreateRender to SUCCEEDED / its
                          tasks; the median of --reps runs (short renders) or one run (long ones)
  per_task_ms_at_equal_load[L]  the same with ~10,000 tasks per length (233 renders of 10 s at once,
                          ..., one of 3600 s), split into per_render_fixed_ms (a render's ~10 store
                          writes, whatever its length) and per_task_marginal_ms (flat in length)
  tasks_per_s_one_process 8 renders of 600 s at once in one orchestrator: tasks / wall
  tasks_per_s_by_replicas the same per replica, in 1 and 2 orchestrator processes on one shared store
                          (each its own renders, as render actors / replicas would drive them)
  list_page_p99_ms_at_10000  ListRenders over gRPC with 10,000 stored renders: p99 of pages of 100,
                          walking the whole listing and a state-filtered one
  create_p99_ms_at_100    100 concurrent CreateRender calls over gRPC from another process (one render
                          each; stages answering in 1 s, so the renders run meanwhile): p99 latency

`--json` prints one JSON object (the keys above plus details); without it, a table. The capacity model
reads the figures from bench/capacity_costs.yaml (`control_plane:`), so `lihq capacity` can say when the
orchestrator, not a GPU stage, is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LENGTHS = (10, 60, 600, 3600)


class Instant:
    """Answers every task at once (or after `latency_s`), with the outputs the orchestrator needs."""

    def __init__(self, duration_s: float, latency_s: float = 0.0) -> None:
        self.duration_s, self.latency_s = duration_s, latency_s

    async def run(self, task, deps):
        from orchestrator.scheduler import TaskResult

        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        out = {"key": f"cache/{task.stage}/{task.id}"}
        if task.id in ("speech", "reference"):
            out["duration_s"] = self.duration_s
        if task.id == "encode":
            out["video"] = "renders/x/output.mp4"
        return TaskResult(out)


def spec():
    from orchestrator.spec import RenderSpec

    return RenderSpec(face_key="inputs/f.png", audio_key="inputs/a.wav")


def orchestrator(root: Path, duration_s: float, latency_s: float = 0.0, **admission):
    from lihq.storage import FileStore
    from orchestrator.core import Admission, Orchestrator
    from orchestrator.scheduler import Limits, RetryPolicy

    return Orchestrator(
        FileStore(root, "lihq"),
        Instant(duration_s, latency_s),
        Limits(default_concurrency=8),
        RetryPolicy(),
        admission=Admission(**admission),
    )


async def _renders(root: Path, duration_s: float, n: int) -> tuple[int, float]:
    """n renders of `duration_s` at once on one orchestrator: (tasks, wall s)."""
    orch = orchestrator(root, duration_s)
    t0 = time.perf_counter()
    per_request = orch.admission.max_renders_per_request
    recs = [
        r for i in range(0, n, per_request) for r in await orch.create([spec()] * min(per_request, n - i))
    ]
    done = [await orch.wait(r.render_id) for r in recs]
    wall = time.perf_counter() - t0
    assert all(r.state == "SUCCEEDED" for r in done), [r.error for r in done]
    return sum(t for r in done for _, t in r.progress.values()), wall


def per_task(base: Path, reps: int) -> dict:
    out, tasks_of = {}, {}
    for length in LENGTHS:
        runs = []
        for i in range(reps if length <= 60 else 1):
            with tempfile.TemporaryDirectory(dir=base) as d:
                tasks, wall = asyncio.run(_renders(Path(d), float(length), 1))
            runs.append(wall * 1000 / tasks)
            tasks_of[str(length)] = tasks
            del i
        out[str(length)] = round(statistics.median(runs), 4)
    vals = list(out.values())
    spread = (max(vals) - min(vals)) / statistics.median(vals)
    # the same lengths at equal load (~10,000 tasks each: many short renders at once), which splits
    # what a render costs into a fixed part per render (its ~10 store writes: created, started, ended,
    # task log, playlist) and a marginal part per task (the scheduler); the single-render figures above
    # also carry the latency of those writes in a row, which a 10 s render's 43 tasks cannot hide
    loaded, renders_of = {}, {}
    for length in LENGTHS:
        n = max(1, round(10_000 / tasks_of[str(length)]))
        with tempfile.TemporaryDirectory(dir=base) as d:
            tasks, wall = asyncio.run(_renders(Path(d), float(length), n))
        loaded[str(length)] = (tasks, wall * 1000)
        renders_of[str(length)] = n
    long_tasks, long_ms = loaded[str(LENGTHS[-1])]
    short_tasks, short_ms = loaded[str(LENGTHS[0])]
    marginal = long_ms / long_tasks  # one render: its fixed part is ~0.1 % of the wall
    fixed = (short_ms - short_tasks * marginal) / renders_of[str(LENGTHS[0])]
    return {
        "per_task_ms": out,
        "tasks": tasks_of,
        "per_task_spread": round(spread, 3),
        "per_task_ms_at_equal_load": {k: round(ms / t, 4) for k, (t, ms) in loaded.items()},
        "renders_at_equal_load": renders_of,
        "per_task_marginal_ms": round(marginal, 4),
        "per_render_fixed_ms": round(fixed, 2),
    }


def one_process(base: Path, renders: int = 8, length: float = 600.0) -> dict:
    with tempfile.TemporaryDirectory(dir=base) as d:
        tasks, wall = asyncio.run(_renders(Path(d), length, renders))
    return {"tasks_per_s_one_process": round(tasks / wall), "one_process": {"tasks": tasks, "wall_s": wall}}


def _replica(root: str, renders: int, length: float, go, q) -> None:
    go.wait()
    t0, c0 = time.time(), time.process_time()
    tasks, _ = asyncio.run(_renders(Path(root), length, renders))
    q.put((tasks, t0, time.time(), time.process_time() - c0))


def replicas(base: Path, per_replica: int = 4, length: float = 3600.0) -> dict:
    """Each replica an OS process with its own orchestrator and renders, on one shared store. Also
    tasks per CPU-second of each replica: what a replica sustains with a core of its own."""
    ctx = mp.get_context("spawn")
    out, per_cpu = {}, {}
    for n in (1, 2):
        with tempfile.TemporaryDirectory(dir=base) as d:
            go, q = ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=_replica, args=(d, per_replica, length, go, q)) for _ in range(n)]
            for p in procs:
                p.start()
            time.sleep(3.0)  # imports done
            go.set()
            res = [q.get(timeout=600) for _ in procs]
            for p in procs:
                p.join()
        tasks = sum(r[0] for r in res)
        wall = max(r[2] for r in res) - min(r[1] for r in res)
        out[str(n)] = round(tasks / wall)
        per_cpu[str(n)] = [round(r[0] / r[3]) for r in res]
    return {
        "tasks_per_s_by_replicas": out,
        "replica_speedup": round(out["2"] / out["1"], 2),
        "tasks_per_cpu_s_by_replica": per_cpu,
        "load_average": os.getloadavg()[0],
    }


def _serve(servicer):
    from lihq.v1 import render_pb2
    from tests.plaingrpc import plain_server

    return plain_server(servicer, [render_pb2.DESCRIPTOR.services_by_name["RenderService"]])


def _p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 2)


def listing(base: Path, n: int = 10_000, page: int = 100) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from lihq.auth import Authenticator
    from lihq.v1 import render_pb2, render_pb2_grpc
    from orchestrator.servicer import RenderServicer
    from orchestrator.state import FAILED, SUCCEEDED, RenderRecord, RenderStore, new_render_id

    with tempfile.TemporaryDirectory(dir=base) as d:
        orch = orchestrator(Path(d), 10.0)
        store = RenderStore(orch.renders.store)

        def one(i: int) -> None:
            rec = RenderRecord(new_render_id(), spec(), state=FAILED if i % 10 == 0 else SUCCEEDED)
            store.save(rec)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(one, range(n)))
        fill_s = time.perf_counter() - t0
        lat: dict[str, list[float]] = {"all": [], "failed": []}
        with _serve(RenderServicer(orch, auth=Authenticator(enabled=False))) as ch:
            stub = render_pb2_grpc.RenderServiceStub(ch)
            stub.ListRenders(render_pb2.ListRendersRequest(page_size=1), timeout=60)  # warm the channel
            for name, state in (("all", 0), ("failed", render_pb2.RENDER_STATE_FAILED)):
                token, seen = "", 0
                while True:
                    t = time.perf_counter()
                    r = stub.ListRenders(
                        render_pb2.ListRendersRequest(page_size=page, page_token=token, state=state),
                        timeout=60,
                    )
                    lat[name].append((time.perf_counter() - t) * 1000)
                    seen += len(r.renders)
                    token = r.next_page_token
                    if not token:
                        break
                assert seen == (n if name == "all" else n // 10), (name, seen)
    every = lat["all"] + lat["failed"]
    return {
        "list_page_p99_ms_at_10000": _p(every, 0.99),
        "list": {
            "renders": n,
            "page_size": page,
            "pages": len(every),
            "p50_ms": _p(every, 0.5),
            "p99_all_ms": _p(lat["all"], 0.99),
            "p99_failed_filter_ms": _p(lat["failed"], 0.99),
            "fill_s": round(fill_s, 1),
        },
    }


def create(base: Path, calls: int = 100) -> dict:

    from lihq.auth import Authenticator
    from lihq.v1 import common_pb2, render_pb2, render_pb2_grpc
    from orchestrator.servicer import RenderServicer
    from orchestrator.uploads import chunks

    with tempfile.TemporaryDirectory(dir=base) as d:
        # stages answer in 1 s (a GPU stage's order of magnitude): the renders created run meanwhile
        # without hogging the loop, as real ones do
        orch = orchestrator(Path(d), 10.0, latency_s=1.0)
        _inputs(Path(d))
        with _serve(RenderServicer(orch, auth=Authenticator(enabled=False))) as ch:
            stub = render_pb2_grpc.RenderServiceStub(ch)
            face = stub.UploadInput(chunks(Path(d) / "f.png"), timeout=60).object
            audio = stub.UploadInput(chunks(Path(d) / "a.wav"), timeout=60).object
            req = render_pb2.CreateRenderRequest(
                renders=[
                    render_pb2.RenderSpec(
                        face=common_pb2.ObjectRef(key=face.key), audio=common_pb2.ObjectRef(key=audio.key)
                    )
                ]
            )
            stub.CreateRender(req, timeout=60)  # warm
            # the callers run in another process (as clients do): no GIL shared with the server
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            p = ctx.Process(target=_create_client, args=(ch.lihq_address, req.SerializeToString(), calls, q))
            p.start()
            lat, errors = q.get(timeout=600)
            p.join()
            deadline = time.monotonic() + 300
            while orch.unfinished_count() and time.monotonic() < deadline:
                time.sleep(0.2)
    return {
        "create_p99_ms_at_100": _p(lat, 0.99),
        "create": {"calls": calls, "p50_ms": _p(lat, 0.5), "max_ms": _p(lat, 1.0), "errors": errors[:3]},
    }


def _inputs(d: Path) -> None:
    """A real (tiny) PNG face and WAV speech: CreateRender reads the face's header to tell an image from
    a video (a file it cannot tell would be probed with ffprobe, as a real client's never is)."""
    import wave

    from PIL import Image

    Image.new("RGB", (64, 64), (128, 100, 90)).save(d / "f.png")
    with wave.open(str(d / "a.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)


def _create_client(address: str, raw_request: bytes, calls: int, q) -> None:
    """`calls` CreateRender calls at once (grpc.aio, one channel); puts (latencies ms, errors)."""
    import grpc

    from lihq.v1 import render_pb2, render_pb2_grpc

    req = render_pb2.CreateRenderRequest.FromString(raw_request)

    async def go() -> tuple[list[float], list[str]]:
        async with grpc.aio.insecure_channel(address) as ch:
            stub = render_pb2_grpc.RenderServiceStub(ch)
            await stub.CreateRender(req, timeout=60)  # connect
            lat: list[float] = []
            errors: list[str] = []

            async def one() -> None:
                t = time.perf_counter()
                try:
                    await stub.CreateRender(req, timeout=60)
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                lat.append((time.perf_counter() - t) * 1000)

            await asyncio.gather(*(one() for _ in range(calls)))
            return lat, errors

    q.put(asyncio.run(go()))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--parts", default="per_task,one_process,replicas,list,create")
    ap.add_argument("--reps", type=int, default=5, help="runs per short render length (median)")
    ap.add_argument("--renders", type=int, default=10_000, help="stored renders for the listing")
    ap.add_argument(
        "--store-dir",
        default="",
        help="where the FileStores go (temporary folders, removed after); default: $LIHQ_HOME/bench, "
        "on the disk `lihq serve` keeps its store on ($LIHQ_HOME/store)",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("LIHQ_AUTH", "off")
    os.environ.setdefault("LIHQ_QUOTA_RUNNING", "1000000")  # measure the control plane, not a tenant quota
    if args.store_dir:
        base = Path(args.store_dir)
    else:
        from lihq.config import lihq_home

        base = lihq_home() / "bench"
    base.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    out: dict = {"machine": f"{os.cpu_count()} CPUs", "store": f"FileStore under {base}"}
    if "per_task" in parts:
        out |= per_task(base, args.reps)
    if "one_process" in parts:
        out |= one_process(base)
    if "replicas" in parts:
        out |= replicas(base)
    if "list" in parts:
        out |= listing(base, args.renders)
    if "create" in parts:
        out |= create(base)
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    for k, v in out.items():
        print(f"{k:28} {v}")


if __name__ == "__main__":
    main()
