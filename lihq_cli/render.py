"""`lihq render`: the embedded default of docs/architecture.md §4 — a local Ray with every stage app behind
Serve's gRPC proxy, the object store from the environment (files under the cache dir, or S3), and the
orchestrator in this process. Live progress per stage with an ETA; Ctrl-C cancels cleanly.

`--weights synthetic` renders with deterministic synthetic checkpoints (a smoke test of a deployment:
the video shows noise-like faces, and every line of output says so).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from lihq.config import RayConfig, StoreConfig
from lihq.errors import InvalidInput
from lihq.stages import TASK_ORDER
from lihq.storage import open_store
from lihq.storage.base import ObjectStore, content_key, sha256_file
from lihq_cli.weightsmode import needed_weights, prepare_weights
from orchestrator.spec import MOTION_PRESETS

_COLORS = {"green", "blue", "black", "white", "red", "gray", "grey"}


def upload(store: ObjectStore, path: Path, what: str) -> str:
    if not path.is_file():
        raise InvalidInput(f"{what} {path}: no such file")
    key = content_key("inputs", sha256_file(path), path.suffix.lstrip(".").lower() or "bin")
    if not store.exists(key):
        store.put_file(key, path)
    return key


def _ordered(progress: dict) -> list[str]:
    rank = {s: i for i, s in enumerate(TASK_ORDER)}
    return sorted(progress, key=lambda s: (rank.get(s, len(rank)), s))


def progress_table(rec, synthetic: bool) -> Table:
    t = Table(title=f"render {rec.render_id} — {rec.state}" + (" — SYNTHETIC WEIGHTS" if synthetic else ""))
    for c in ("stage", "done", "total", ""):
        t.add_column(c)
    for stage in _ordered(rec.progress):
        done, total = rec.progress[stage]
        bar = "█" * int(20 * done / max(1, total))
        t.add_row(stage, str(done), str(total), bar.ljust(20, "░"))
    t.caption = f"ETA {rec.eta_s:.0f} s" if rec.eta_s else ""
    return t


def check_output_path(output: Path, inputs: list[Path]) -> None:
    """Refuse an output that is (or is a hard link of) an input: a render never destroys its inputs."""
    out = output.expanduser()
    for src in inputs:
        same = out.resolve() == src.expanduser().resolve()
        if not same and out.exists() and src.exists():
            try:
                same = os.path.samefile(out, src)
            except OSError:
                same = False
        if same:
            raise InvalidInput(
                f"-o {output} is the input {src}: choose another output path (inputs are never overwritten)"
            )
    if out.is_dir():
        raise InvalidInput(f"-o {output} is a directory: give a file name such as {output / 'out.mp4'}")


def _is_color(value: str) -> bool:
    return value.startswith("#") or value.lower() in _COLORS


def background_from(value: str | None, store: ObjectStore):
    from orchestrator.spec import Background

    if not value:
        return Background()
    if _is_color(value):
        return Background(color=value)
    path = Path(value)
    key = upload(store, path, "background")
    is_video = path.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm", ".avi")
    return Background(video_key=key) if is_video else Background(image_key=key)


async def run_render(
    orch,
    spec,
    console: Console,
    synthetic: bool,
    finished_at: dict | None = None,
    hls_dir: Path | None = None,
):
    """Create the render and show its live table; `finished_at[stage]` = seconds until it was done.
    With `hls_dir`, the render's HLS playlist and segments are copied there as they appear."""
    from orchestrator.hls import LocalMirror

    t0 = time.monotonic()
    finished_at = {} if finished_at is None else finished_at
    seen: dict[str, tuple] = {}
    [created] = await orch.create([spec])
    rec = created
    mirror = LocalMirror(orch.renders.store, created.render_id, hls_dir) if hls_dir else None
    with Live(progress_table(rec, synthetic), console=console, refresh_per_second=4) as live:
        try:
            async for update in orch.watch(created.render_id, timeout_s=1.0):
                rec = update
                for stage, pair in rec.progress.items():  # a stage is done when its count last moved
                    if tuple(pair) != seen.get(stage):
                        seen[stage] = tuple(pair)
                        finished_at[stage] = time.monotonic() - t0
                live.update(progress_table(rec, synthetic))
                if mirror is not None and rec.playlist_key:
                    await asyncio.to_thread(mirror.sync)
        except asyncio.CancelledError:
            rec = await orch.cancel(created.render_id)
    if mirror is not None and rec.playlist_key:
        await asyncio.to_thread(mirror.sync)  # the last segments and #EXT-X-ENDLIST
    return rec


class OffsetType(click.ParamType):
    """--offset: seconds (>= 0) or the word `random`."""

    name = "SECONDS|random"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "random":
            return value
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r}: give seconds (e.g. 3.5) or 'random'", param, ctx)
        if not seconds >= 0 or seconds == float("inf"):
            self.fail(f"{value!r}: must be a finite number of seconds >= 0", param, ctx)
        return seconds


def offset_line(spec) -> str:
    """The start `--offset random` chose, and how to repeat it."""
    return (
        f"reference offset: {spec.reference_offset_s:.3f} s (random, seed {spec.seed}); repeat it with "
        f"--offset {spec.reference_offset_s:.3f} --seed {spec.seed}"
    )


def summary_lines(rec, finished_at: dict, startup_s: float, total_s: float) -> list[str]:
    """The closing lines: when each stage (pipeline order) was done, and the whole time."""
    parts = [f"{s} {finished_at[s]:.1f}s" for s in _ordered(finished_at)]
    return [
        f"stages done at (s after submit): {', '.join(parts)}",
        f"time: {total_s:.0f} s in all ({startup_s:.0f} s starting the stage services, "
        f"{total_s - startup_s:.0f} s rendering"
        + (
            f"; first HLS segment playable {rec.first_playable_s:.1f} s after submit)"
            if rec.first_playable_s
            else ")"
        ),
    ]


@click.command()
@click.option(
    "--face",
    type=click.Path(path_type=Path),
    required=True,
    help="Face image (png/jpg), or a video of a speaker to dub (its frames, rate and size are kept).",
)
@click.option(
    "--audio", type=click.Path(path_type=Path), default=None, help="Speech (any format ffmpeg reads)."
)
@click.option("--text", default=None, help="Text to speak (TTS) instead of --audio.")
@click.option("--voice", default="", help="TTS voice (with --text).")
@click.option(
    "--tts-backend", default="", help="espeak | tortoise | bark (default: best with weights present)."
)
@click.option(
    "--ref-video", type=click.Path(path_type=Path), default=None, help="Reference video for head motion."
)
@click.option(
    "--offset",
    type=OffsetType(),
    default="0",
    help="Seconds into the reference video, or 'random' (a start picked from --seed that fits the speech).",
)
@click.option(
    "--keep-lips",
    is_flag=True,
    help="Keep the reference video's own mouth (its speaker says the same words): no Wav2Lip.",
)
@click.option(
    "--motion",
    type=click.Choice(MOTION_PRESETS),
    default=None,
    help="Procedural head-motion preset without --ref-video (default sway).",
)
@click.option("--passes", type=click.IntRange(1, 2), default=2, show_default=True)
@click.option("--interpolate", type=click.IntRange(0, 7), default=0, help="QVI: k frames between each pair.")
@click.option("--background", default=None, help="A colour (#00ff00, green) or an image / video file.")
@click.option("--paste-back", is_flag=True, help="Paste the talking face back onto the original photo.")
@click.option("--wav2lip-checkpoint", type=click.Choice(["wav2lip", "wav2lip_gan"]), default="wav2lip_gan")
@click.option("--gfpgan-version", type=click.Choice(["1.3", "1.4"]), default="1.3")
@click.option("--upscale", type=click.IntRange(1, 4), default=4, show_default=True)
@click.option("--draft", type=float, default=0.0, help="Render only the first N seconds (a preview).")
@click.option("--seed", type=int, default=0)
@click.option(
    "--weights", "weights_mode", type=click.Choice(["real", "synthetic"]), default="real", show_default=True
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output mp4.")
@click.option("--grpc-port", type=int, default=9000, show_default=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None)
@click.option(
    "--hls",
    "hls_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the HLS playlist (index.m3u8) and segments to this directory as they are made: "
    "`ffplay -live_start_index 0 DIR/index.m3u8` plays while the render runs.",
)
def render(
    face,
    audio,
    text,
    voice,
    tts_backend,
    ref_video,
    offset,
    keep_lips,
    motion,
    passes,
    interpolate,
    background,
    paste_back,
    wav2lip_checkpoint,
    gfpgan_version,
    upscale,
    draft,
    seed,
    weights_mode,
    output,
    grpc_port,
    config_path,
    hls_dir,
):
    """Render a talking-head video from a face image (or dub a speaker video) and speech."""
    from lihq_cli import serving
    from lihq_cli.main import DEFAULT_SERVE_CONFIG
    from orchestrator.spec import RenderSpec, check, with_defaults
    from services.media.video_face import is_video_file

    console = Console(stderr=True)
    t_start = time.monotonic()
    if bool(audio) == bool(text):
        raise InvalidInput("give exactly one of --audio or --text")
    bg_file = Path(background) if background and not _is_color(background) else None
    check_output_path(output, [p for p in (face, audio, ref_video, bg_file) if p is not None])
    if hls_dir is not None and hls_dir.exists() and not hls_dir.is_dir():
        raise InvalidInput(f"--hls {hls_dir} is a file: give a directory (it is created if missing)")
    store = open_store(StoreConfig.from_env())
    spec = check(
        with_defaults(
            RenderSpec(
                face_key=upload(store, face, "face"),
                audio_key=upload(store, audio, "audio") if audio else "",
                text=text or "",
                voice=voice,
                tts_backend=tts_backend,
                reference_video_key=upload(store, ref_video, "reference video") if ref_video else "",
                reference_offset_s=0.0 if offset == "random" else offset,
                reference_offset_random=offset == "random",
                keep_lips=keep_lips,
                motion_preset=motion or "",
                passes=passes,
                interpolate=interpolate,
                background=background_from(background, store),
                paste_back=paste_back,
                wav2lip_checkpoint=wav2lip_checkpoint,
                gfpgan_version=gfpgan_version,
                upscale=upscale,
                draft_seconds=draft,
                seed=seed,
                face_video=is_video_file(face),  # dubbing: the video's speaker says the speech
            )
        )
    )
    synthetic = weights_mode == "synthetic"
    wdir = prepare_weights(needed_weights(spec), weights_mode, console)  # sets the env the replicas inherit
    if synthetic:
        console.print("[bold yellow]SYNTHETIC WEIGHTS[/]: a smoke test of the pipeline, not a real video.")
    opts = serving.ServeOptions(
        config_path or DEFAULT_SERVE_CONFIG, grpc_port, None, RayConfig.from_env(), log_to_driver=False
    )
    console.print("starting the stage services (local Ray + Serve gRPC proxy) …")
    serving.deploy(opts)
    startup_s = time.monotonic() - t_start
    finished_at: dict[str, float] = {}
    try:
        rec = asyncio.run(_render(store, spec, grpc_port, console, synthetic, finished_at, hls_dir))
    finally:
        serving.shutdown()
    if rec.state != "SUCCEEDED":
        raise (
            InvalidInput(f"render {rec.state.lower()}: {rec.error}")
            if rec.error_code == "INVALID_ARGUMENT"
            else _failed(rec)
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    store.get_file(rec.output_key, tmp)
    os.replace(tmp, output)
    console.line()  # the live table's last frame ends without a newline when stderr is not a terminal
    for line in summary_lines(rec, finished_at, startup_s, time.monotonic() - t_start):
        console.print(line, soft_wrap=True, highlight=False)
    if rec.spec.reference_offset_random:
        console.print(offset_line(rec.spec), soft_wrap=True, highlight=False, markup=False)
    kind = "SYNTHETIC (seed 1, a smoke test: not a real video)" if synthetic else "real"
    console.print(f"weights: {kind} from {wdir}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"wrote {output.resolve()} (store key {rec.output_key})", soft_wrap=True, markup=False)


def _failed(rec):
    from lihq.errors import Internal

    return Internal(f"render {rec.state.lower()} at stage {rec.error_stage or '?'}: {rec.error}")


async def _render(store, spec, grpc_port, console, synthetic, finished_at, hls_dir=None):
    from lihq.grpc.client import StageEndpoint
    from orchestrator import adapters_models  # noqa: F401
    from orchestrator.core import Orchestrator
    from orchestrator.deployment import STAGE_APPS
    from orchestrator.executor import GrpcExecutor

    endpoints = {app: StageEndpoint(f"127.0.0.1:{grpc_port}", app) for app in STAGE_APPS}
    orch = Orchestrator(store, GrpcExecutor(endpoints), synthetic=synthetic)
    return await run_render(orch, spec, console, synthetic, finished_at, hls_dir)
