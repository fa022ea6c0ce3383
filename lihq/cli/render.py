"""`lihq render`: the embedded default of ARCHITECTURE.md §4 — a local Ray with every stage app behind
Serve's gRPC proxy, the object store from the environment (files under the cache dir, or S3), and the
orchestrator in this process. Live progress per stage with an ETA; Ctrl-C cancels cleanly.

`--weights synthetic` renders with deterministic synthetic checkpoints (a smoke test of a deployment:
the video shows noise-like faces, and every line of output says so).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from lihq.config import RayConfig, StoreConfig, WeightsConfig, lihq_home
from lihq.errors import InvalidInput, WeightsMissing
from lihq.storage import open_store
from lihq.storage.base import ObjectStore, content_key, sha256_file

MODELS = {"fomm": "fomm", "wav2lip": "s3fd", "gfpgan": "facexlib", "qvi": "qvi", "modnet": "modnet"}
_COLORS = {"green", "blue", "black", "white", "red", "gray", "grey"}


def upload(store: ObjectStore, path: Path, what: str) -> str:
    if not path.is_file():
        raise InvalidInput(f"{what} {path}: no such file")
    key = content_key("inputs", sha256_file(path), path.suffix.lstrip(".").lower() or "bin")
    if not store.exists(key):
        store.put_file(key, path)
    return key


def needed_weights(spec) -> list[str]:
    names = ["fomm", spec.wav2lip_checkpoint, "s3fd", f"gfpgan-{spec.gfpgan_version}", "facexlib"]
    if spec.interpolate:
        names.append("qvi")
    if spec.background.kind != "none":
        names.append("modnet")
    if spec.background_upsampler:
        names.append("realesrgan-x2plus")
    return names


def prepare_weights(spec, mode: str, console: Console) -> Path:
    """Real: check the files are there (one clear line if not). Synthetic: make them once (seed 1)."""
    from lihq.weights import registry
    from lihq.weights.synth import synthesize

    names = needed_weights(spec)
    if mode == "synthetic":
        wdir = lihq_home() / "weights-synthetic" / "seed1"
        for name in names:
            missing = [p for p in registry.local_paths(registry.get_entry(name), wdir) if not p.exists()]
            if missing:
                console.print(f"synthesizing {name} weights (seed 1) …")
                synthesize(name, 1, wdir)
        return wdir
    cfg = WeightsConfig.from_env()
    missing = [
        n for n in names if any(not p.exists() for p in registry.local_paths(registry.get_entry(n), cfg))
    ]
    if missing:
        raise WeightsMissing(
            f"missing weights: {', '.join(missing)} in {cfg.dir}; run `lihq weights fetch {' '.join(missing)}` "
            "or render a smoke test with --weights synthetic"
        )
    return cfg.dir


def progress_table(rec, synthetic: bool) -> Table:
    t = Table(title=f"render {rec.render_id} — {rec.state}" + (" — SYNTHETIC WEIGHTS" if synthetic else ""))
    for c in ("stage", "done", "total", ""):
        t.add_column(c)
    for stage, (done, total) in sorted(rec.progress.items()):
        bar = "█" * int(20 * done / max(1, total))
        t.add_row(stage, str(done), str(total), bar.ljust(20, "░"))
    t.caption = f"ETA {rec.eta_s:.0f} s" if rec.eta_s else ""
    return t


def background_from(value: str | None, store: ObjectStore):
    from orchestrator.spec import Background

    if not value:
        return Background()
    if value.startswith("#") or value.lower() in _COLORS:
        return Background(color=value)
    path = Path(value)
    key = upload(store, path, "background")
    is_video = path.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm", ".avi")
    return Background(video_key=key) if is_video else Background(image_key=key)


async def run_render(orch, spec, console: Console, synthetic: bool):
    [created] = await orch.create([spec])
    rec = created
    with Live(progress_table(rec, synthetic), console=console, refresh_per_second=4) as live:
        try:
            async for update in orch.watch(created.render_id, timeout_s=1.0):
                rec = update
                live.update(progress_table(rec, synthetic))
        except asyncio.CancelledError:
            rec = await orch.cancel(created.render_id)
    return rec


@click.command()
@click.option("--face", type=click.Path(path_type=Path), required=True, help="Face image (png/jpg).")
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
@click.option("--offset", type=float, default=0.0, help="Seconds into the reference video.")
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
def render(
    face,
    audio,
    text,
    voice,
    tts_backend,
    ref_video,
    offset,
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
):
    """Render a talking-head video from a face image and speech."""
    from lihq import serving
    from lihq.cli.main import DEFAULT_SERVE_CONFIG
    from orchestrator.spec import RenderSpec, check, with_defaults

    console = Console(stderr=True)
    if bool(audio) == bool(text):
        raise InvalidInput("give exactly one of --audio or --text")
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
                reference_offset_s=offset,
                passes=passes,
                interpolate=interpolate,
                background=background_from(background, store),
                paste_back=paste_back,
                wav2lip_checkpoint=wav2lip_checkpoint,
                gfpgan_version=gfpgan_version,
                upscale=upscale,
                draft_seconds=draft,
                seed=seed,
            )
        )
    )
    synthetic = weights_mode == "synthetic"
    os.environ["LIHQ_WEIGHTS_DIR"] = str(
        prepare_weights(spec, weights_mode, console)
    )  # the replicas inherit it
    if synthetic:
        console.print("[bold yellow]SYNTHETIC WEIGHTS[/]: a smoke test of the pipeline, not a real video.")
    opts = serving.ServeOptions(
        config_path or DEFAULT_SERVE_CONFIG, grpc_port, None, RayConfig.from_env(), log_to_driver=False
    )
    console.print("starting the stage services (local Ray + Serve gRPC proxy) …")
    serving.deploy(opts)
    try:
        rec = asyncio.run(_render(store, spec, grpc_port, console, synthetic))
    finally:
        serving.shutdown()
    if rec.state != "SUCCEEDED":
        raise (
            InvalidInput(f"render {rec.state.lower()}: {rec.error}")
            if rec.error_code == "INVALID_ARGUMENT"
            else _failed(rec)
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    store.get_file(rec.output_key, output)
    note = " (SYNTHETIC WEIGHTS: smoke test)" if synthetic else ""
    console.print(f"wrote {output}{note}; store key {rec.output_key}")


def _failed(rec):
    from lihq.errors import Internal

    return Internal(f"render {rec.state.lower()} at stage {rec.error_stage or '?'}: {rec.error}")


async def _render(store, spec, grpc_port, console, synthetic):
    from lihq.grpc.client import StageEndpoint
    from orchestrator import adapters_models  # noqa: F401
    from orchestrator.core import Orchestrator
    from orchestrator.deployment import STAGE_APPS
    from orchestrator.executor import GrpcExecutor

    endpoints = {app: StageEndpoint(f"127.0.0.1:{grpc_port}", app) for app in STAGE_APPS}
    orch = Orchestrator(store, GrpcExecutor(endpoints), synthetic=synthetic)
    return await run_render(orch, spec, console, synthetic)
