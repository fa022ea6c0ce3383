"""`lihq capacity`: predicted throughput, latency, utilisation and the bottleneck for 1 to 1,000 GPUs.

For each GPU count: the recommended split of GPUs over the stages the recipe uses (and CPU replicas
for the media stage), the analytic capacity of that split, then a discrete-event simulation of the
orchestrator's segment scheduling at the offered load (`--videos-per-hour`, or `--load` x capacity).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from lihq_cli import capacity as cap

DEFAULT_COSTS = Path(__file__).resolve().parents[2] / "bench" / "capacity_costs.yaml"
DEFAULT_GPUS = "1,2,4,8,16,32,64,128,256,512,1000"


def _gpu_counts(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"--gpus: {exc}") from exc
    if not out or any(g <= 0 or g > 100_000 for g in out):
        raise click.BadParameter("--gpus: positive GPU counts, e.g. 1,2,4,1000")
    return out


def _split(text: str | None, total: float, work: dict[str, float], gpu: cap.Profile) -> cap.Allocation:
    """`fomm=2,wav2lip=1,...` (media=N sets CPU replicas); other used stages get the recommendation."""
    rec = cap.recommend(total, work, gpu)
    if not text:
        return rec
    gpus, media = dict(rec.gpus), rec.media_replicas
    for part in text.split(","):
        stage, _, n = part.partition("=")
        if stage == cap.CPU_STAGE:
            media = int(n)
        elif stage in gpus:
            gpus[stage] = float(n)
        else:
            raise click.BadParameter(f"--split: unknown stage {stage!r}")
    return cap.Allocation(gpus, media)


def table_rows(
    costs: cap.Costs, gpu: cap.Profile, cpu: cap.Profile, base: cap.Workload, counts: list[float],
    load: float, videos_per_hour: float | None, split: str | None, orchestrators: int | None = None,
) -> list[dict]:  # fmt: skip
    work = cap.work_per_video(base, gpu, cpu, costs)
    control = cap.control_plane_per_hour(base, costs, orchestrators)  # the orchestrator as a stage
    rows = []
    for g in counts:
        alloc = _split(split, g, work, gpu)
        per_stage = cap.capacity_per_hour(alloc, work, gpu)
        capacity = min(*per_stage.values(), control)
        rate = videos_per_hour if videos_per_hour is not None else load * capacity
        w = replace(base, videos_per_hour=rate)
        sim = cap.simulate(w, costs, gpu, cpu, alloc)
        used = {s: u for s, u in sim.utilisation.items() if work.get(s, 0) > 0}
        rows.append(
            {
                "gpus": g, "split": alloc.label(), "capacity": capacity, "offered": rate,
                "throughput": sim.throughput_per_h, "p50": sim.latency_p50_s, "p95": sim.latency_p95_s,
                "util": used, "stable": rate < capacity,
                "bottleneck": "orchestrator" if control <= min(per_stage.values()) else max(used, key=lambda s: used[s]),
            }
        )  # fmt: skip
    return rows


def _print_table(rows: list[dict]) -> None:
    click.echo(
        f"{'GPUs':>6}  {'capacity v/h':>12}  {'offered':>8}  {'sim v/h':>8}  {'p50 s':>7}  {'p95 s':>7}  "
        f"{'bottleneck':<10}  utilisation / split"
    )
    for r in rows:
        util = " ".join(f"{s} {100 * u:.0f}%" for s, u in r["util"].items())
        flag = "" if r["stable"] else "  OVERLOADED: latency grows with the run"
        click.echo(
            f"{r['gpus']:>6g}  {r['capacity']:>12.1f}  {r['offered']:>8.1f}  {r['throughput']:>8.1f}  "
            f"{r['p50']:>7.1f}  {r['p95']:>7.1f}  {r['bottleneck']:<10}  {util}{flag}"
        )
        click.echo(f"{'':>6}  split: {r['split']}")


@click.command(name="capacity")
@click.option("--costs", "costs_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_COSTS, show_default=True, help="Per-stage costs (YAML).")  # fmt: skip
@click.option(
    "--gpu", "gpu_profile", default="h100", show_default=True, help="Cost profile of the GPU stages."
)
@click.option("--cpu", "cpu_profile", default="cpu-2core", show_default=True, help="Cost profile of media.")
@click.option("--gpus", default=DEFAULT_GPUS, show_default=True, help="GPU counts, comma-separated.")
@click.option(
    "--videos-per-hour", type=float, default=None, help="Offered load (default: --load x capacity)."
)
@click.option("--load", type=float, default=0.8, show_default=True, help="Offered load / capacity per row.")
@click.option("--length", "length_s", type=float, default=30.0, show_default=True, help="Mean video seconds.")
@click.option("--length-dist", type=click.Choice(["fixed", "exp"]), default="fixed", show_default=True)
@click.option("--passes", type=click.IntRange(1, 2), default=2, show_default=True)
@click.option("--interpolate", type=click.IntRange(0, 8), default=0, show_default=True, help="QVI k.")
@click.option("--background/--no-background", default=False, show_default=True, help="MODNet matting.")
@click.option("--text/--audio", default=False, show_default=True, help="Speech from text (TTS) or audio.")
@click.option("--split", default=None, help="Fix some stages, e.g. fomm=2,gfpgan=4,media=8.")
@click.option(
    "--renders", type=int, default=500, show_default=True, help="Videos simulated per row (at least)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--orchestrators", type=click.IntRange(1, 100_000), default=None,
              help="Orchestrator replicas (render-actor processes); default: control_plane.replicas.")  # fmt: skip
def capacity(
    costs_path: Path, gpu_profile: str, cpu_profile: str, gpus: str, videos_per_hour: float | None,
    load: float, length_s: float, length_dist: str, passes: int, interpolate: int, background: bool,
    text: bool, split: str | None, renders: int, seed: int, orchestrators: int | None,
) -> None:  # fmt: skip
    """Predict throughput, latency, per-stage utilisation and the bottleneck for N GPUs."""
    if not 0 < load < 10:
        raise click.BadParameter("--load must be in (0, 10)")
    costs = cap.load_costs(costs_path)
    gpu, cpu = costs.profile(gpu_profile), costs.profile(cpu_profile)
    base = cap.Workload(
        mean_length_s=length_s, videos_per_hour=1.0, passes=passes, interpolate=interpolate,
        background=background, text=text, length_dist=length_dist, renders=renders, seed=seed,
    )  # fmt: skip
    work = cap.work_per_video(base, gpu, cpu, costs)
    placeholders = sorted(s for s, c in gpu.stages.items() if c.placeholder and work.get(s, 0) > 0)
    click.echo(
        f"workload: {length_s:g} s videos ({cap.segments_for(length_s, costs)} segments), passes {passes}, "
        f"interpolate {interpolate}, background {'yes' if background else 'no'}, speech {'text' if text else 'audio'}"
    )
    click.echo(f"costs: {costs_path} [{gpu.name}: {gpu.source}] [{cpu.name}: {cpu.source}]")
    click.echo("replica-seconds per video: " + ", ".join(f"{s} {w:.1f}" for s, w in work.items() if w > 0))
    cp = costs.control_plane
    if cp.tasks_per_s_per_replica > 0:
        n = orchestrators or cp.replicas
        click.echo(
            f"control plane: {cap.orchestrator_tasks_per_video(base, costs):.0f} orchestrator tasks per video; "
            f"{cp.tasks_per_s_per_replica:g} tasks/s per replica x {n} -> "
            f"{cap.control_plane_per_hour(base, costs, n):.0f} videos/h at most [{cp.source}]"
        )
    if placeholders:
        click.echo(
            f"WARNING: placeholder (unmeasured) costs for {', '.join(placeholders)}: figures are estimates"
        )
    click.echo("")
    _print_table(
        table_rows(costs, gpu, cpu, base, _gpu_counts(gpus), load, videos_per_hour, split, orchestrators)
    )
