"""Orchestrator figures (issue #7): overhead fraction, 2-replica speed-up of the slowest stage, cached re-render.

Run: `python bench/orchestrator_bench.py` (CPU, synthetic weights, small sizes; ~6 minutes on 2 cores).
Options: --text/--wpm (the espeak speech: its length sets the frame count), --passes, --segment-frames,
--store file|s3 (s3: a local `rclone serve s3`, as the tests use), --parts overhead,replicas,cache.

Setup: the stage apps of serve_configs/local.yaml (media, fomm, wav2lip, gfpgan) hosted in recording
stage processes (bench/stagehost.py — the servicers `lihq host` runs, each call logged with its time
in the servicer and in object-store calls); the orchestrator in this process over real gRPC, exactly
as the RenderService runs it. Every render gets a fresh store unless it is the cached re-render. Each
stage process computes with --threads threads (default 1: a replica is one core, as it is one GPU on
the cluster), so a second replica has a core of its own to use.

(a) overhead = the share of the render's wall time not spent computing in a stage:
      idle   — no stage call in flight (planning, state writes, scheduling gaps, creation checks' client side)
      in-RPC — gRPC transport + (de)serialisation + the stages' object-store reads/writes, inside calls;
               summed per call, then scaled by the busy time / summed call time (calls overlap)
    overhead % = (idle + in-RPC) / wall. Target <= 5 %.
(b) speed-up = wall with 1 replica of the slowest stage / wall with 2 (two stage processes behind one
    round-robin gRPC target, the orchestrator's concurrency for that stage doubled). On a 2-core box the
    replicas share the cores the other stages use, so this is a floor of what separate GPUs give.
(c) cached re-render = the same request again on the same store (every stage answers from its
    content-addressed cache) vs the first render.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.s3server import S3Server, free_port  # noqa: E402  (the test suite's helpers, after the path)

STAGE_APPS = ("media", "fomm", "wav2lip", "gfpgan")
WEIGHTS = ("fomm", "wav2lip_gan", "s3fd", "gfpgan-1.3", "facexlib")


class StageHosts:
    """Recording stage processes on one store; `extra` more processes of one app (replicas)."""

    def __init__(self, work: Path, env: dict[str, str], config: Path) -> None:
        self.work, self.env, self.config = work, env, config
        self.procs: list[subprocess.Popen] = []
        self.calls = work / "calls.jsonl"

    def start(self, apps: tuple[str, ...]) -> str:
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "bench.stagehost",
            str(self.config),
            f"127.0.0.1:{port}",
            str(self.calls),
            "0",
        ]
        log = open(self.work / f"host-{port}.log", "wb")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([*cmd, *apps], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError((self.work / f"host-{port}.log").read_text()[-3000:])
            if "ready" in (self.work / f"host-{port}.log").read_text():
                return f"127.0.0.1:{port}"
            time.sleep(0.3)
        raise TimeoutError(f"stage host {apps} did not start")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    def records(self) -> list[dict]:
        if not self.calls.exists():
            return []
        return [json.loads(x) for x in self.calls.read_text().splitlines()]


class Intervals:
    """Client-side (start, end) of every stage call the orchestrator makes."""

    def __init__(self, inner) -> None:
        self.inner, self.spans = inner, []

    def for_render(self, rec):
        bound = Intervals(self.inner.for_render(rec))
        bound.spans = self.spans
        return bound

    async def run(self, task, deps):
        t0 = time.perf_counter()
        try:
            return await self.inner.run(task, deps)
        finally:
            self.spans.append((t0, time.perf_counter(), task.stage))


def union(spans: list[tuple[float, float, str]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b, _ in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


async def render(
    env: dict[str, str], endpoints: dict, face: Path, audio: Path, args, concurrency: dict
) -> dict:
    """One render through a fresh Orchestrator over gRPC; returns its wall time and call spans."""
    from lihq.config import StoreConfig
    from lihq.grpc.client import StageEndpoint
    from lihq.storage import open_store
    from lihq_cli.render import upload
    from orchestrator import adapters_models  # noqa: F401  (registers the model adapters)
    from orchestrator.core import Orchestrator
    from orchestrator.executor import GrpcExecutor
    from orchestrator.scheduler import Limits
    from orchestrator.spec import RenderSpec
    from orchestrator.state import SUCCEEDED

    store = open_store(StoreConfig.from_env(env))
    spec = RenderSpec(
        face_key=upload(store, face, "face"),
        audio_key=upload(store, audio, "audio"),
        passes=args.passes,
        upscale=1,
        segment_frames=args.segment_frames,
    )
    executor = Intervals(GrpcExecutor({a: StageEndpoint(addr, a) for a, addr in endpoints.items()}))
    orch = Orchestrator(store, executor, Limits(concurrency=concurrency), synthetic=True)
    t0 = time.perf_counter()
    [rec] = await orch.create([spec])
    done = await orch.wait(rec.render_id)
    wall = time.perf_counter() - t0
    if done.state != SUCCEEDED:
        raise RuntimeError(f"render {done.state}: {done.error}")
    return {"wall": wall, "spans": executor.spans, "output": done.output_key}


def store_env(base: dict[str, str], root: Path, name: str, s3) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("LIHQ_S3_")}
    env.update(LIHQ_BUCKET=name, LIHQ_STORE_DIR=str(root / "store"))
    if s3 is not None:
        env.update(
            LIHQ_S3_ENDPOINT=s3.endpoint, LIHQ_S3_ACCESS_KEY=s3.access_key, LIHQ_S3_SECRET_KEY=s3.secret_key
        )
    return env


def overhead(res: dict, calls: list[dict]) -> dict:
    spans = res["spans"]
    client = sum(b - a for a, b, _ in spans)
    server = sum(c.get("server_s", 0.0) for c in calls)
    store = sum(c.get("store_s", 0.0) for c in calls)
    busy = union(spans)
    idle = res["wall"] - busy
    in_rpc = max(client - server, 0.0) + store
    in_rpc_wall = in_rpc * busy / client if client else 0.0
    per_stage: dict[str, float] = defaultdict(float)
    for a, b, stage in spans:
        per_stage[stage] += b - a
    return {
        "wall_s": res["wall"],
        "idle_s": idle,
        "transport_s": max(client - server, 0.0),
        "store_s": store,
        "in_rpc_wall_s": in_rpc_wall,
        "overhead_pct": 100 * (idle + in_rpc_wall) / res["wall"],
        "calls": len(calls),
        "per_stage_call_s": dict(sorted(per_stage.items(), key=lambda kv: -kv[1])),
    }


async def run(args) -> None:
    from PIL import Image
    from skimage.data import astronaut

    from lihq.grpc.auth import ensure_internal_token
    from lihq.weights.synth import synthesize

    ensure_internal_token()  # the stage hosts (started with this environment) require it
    work = Path(tempfile.mkdtemp(prefix="lihq-orch-bench-"))
    weights = work / "weights"
    for name in WEIGHTS:
        synthesize(name, 1, weights)
    Image.fromarray(astronaut()).save(work / "face.png")
    audio = work / "speech.wav"
    subprocess.run(["espeak-ng", "-s", str(args.wpm), "-w", str(audio), args.text], check=True)
    from lihq import media

    dur = media.probe(audio).duration
    cfg = yaml.safe_load((REPO / "serve_configs" / "local.yaml").read_text())
    config = work / "serve.yaml"
    config.write_text(yaml.safe_dump(cfg))
    base = dict(os.environ, LIHQ_WEIGHTS_DIR=str(weights), LIHQ_HOME=str(work / "home"), PYTHONUNBUFFERED="1")
    base.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    s3 = None
    if args.store == "s3":
        s3 = S3Server.start(work / "s3")
    parts = set(args.parts.split(","))
    out: dict = {"machine": f"{os.cpu_count()} CPUs", "speech_s": dur, "store": args.store}
    print(
        f"speech {dur:.2f} s ({round(dur * 25)} frames), passes {args.passes}, segments of {args.segment_frames}"
    )

    async def one(name: str, split: str | None = None, replicas: int = 1, again: bool = False) -> tuple:
        root = work / name
        root.mkdir()
        env = store_env(base, root, name.replace("_", "-"), s3)
        hosts = StageHosts(root, env, config)
        try:
            rest = tuple(a for a in STAGE_APPS if a != split)
            addr = hosts.start(rest)
            endpoints = {a: addr for a in rest}
            concurrency = {}
            if split:
                endpoints[split] = "ipv4:" + ",".join(hosts.start((split,)) for _ in range(replicas))
                concurrency[split] = 2 * replicas
            first = await render(env, endpoints, work / "face.png", audio, args, concurrency)
            calls = hosts.records()
            second = (
                await render(env, endpoints, work / "face.png", audio, args, concurrency) if again else None
            )
            return first, calls, second
        finally:
            hosts.stop()

    if parts & {"overhead", "cache"}:
        first, calls, second = await one("overhead", again="cache" in parts)
        o = overhead(first, calls)
        out["overhead"] = o
        print(
            f"(a) overhead: {o['overhead_pct']:.1f} % of {o['wall_s']:.1f} s wall "
            f"(idle {o['idle_s']:.2f} s, transport {o['transport_s']:.2f} s, store {o['store_s']:.2f} s "
            f"over {o['calls']} calls; {o['in_rpc_wall_s']:.2f} s of wall)"
        )
        print(
            "    stage call seconds (summed): "
            + ", ".join(f"{k} {v:.1f}" for k, v in o["per_stage_call_s"].items())
        )
        slowest = next(iter(o["per_stage_call_s"]))
        if second is not None:
            out["cache"] = {
                "first_s": first["wall"],
                "cached_s": second["wall"],
                "ratio": first["wall"] / second["wall"],
            }
            print(
                f"(c) cached re-render: {second['wall']:.2f} s vs first {first['wall']:.2f} s "
                f"({first['wall'] / second['wall']:.1f}x faster)"
            )
    else:
        slowest = "gfpgan"
    if "replicas" in parts:
        walls = {}
        for n in (1, 2):
            res, _, _ = await one(f"replicas{n}", split=slowest, replicas=n)
            walls[n] = res["wall"]
        out["replicas"] = {
            "stage": slowest,
            "wall_1": walls[1],
            "wall_2": walls[2],
            "speedup": walls[1] / walls[2],
        }
        print(
            f"(b) 2 replicas of {slowest}: {walls[2]:.1f} s vs 1 replica {walls[1]:.1f} s "
            f"(speed-up {walls[1] / walls[2]:.2f}x)"
        )
    if s3 is not None:
        s3.stop()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", default="Hi there, friends.")
    ap.add_argument("--wpm", type=int, default=300)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--segment-frames", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="OMP/torch threads per stage process (= one core)")
    ap.add_argument("--store", choices=("file", "s3"), default="file")
    ap.add_argument("--parts", default="overhead,replicas,cache")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
