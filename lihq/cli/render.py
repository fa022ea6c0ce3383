"""`lihq render`: what exists of the LIHQ recipe today, end to end through the stage services.

Today the model stages (FOMM, Wav2Lip, GFPGAN, QVI, MODNet, TTS) are not deployed yet, so this
renders the *still* face with the speech through the media stage — ingest, audio extraction, frame
packs and the final H.264/AAC encode — over Serve's gRPC proxy and the configured object store. It
says so on every run. The orchestrator issue replaces the middle with the full recipe.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import click
import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from lihq import media
from lihq.cache import cache_key, stage_digest
from lihq.config import RayConfig, StoreConfig
from lihq.errors import InvalidInput
from lihq.framepack import pack_frames
from lihq.grpc.client import StageClient, StageEndpoint
from lihq.storage import open_store
from lihq.storage.base import ObjectStore, content_key, sha256_file

FPS = 25.0
SEGMENT = 50


def _upload(store: ObjectStore, path: Path) -> tuple[str, str]:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    digest = sha256_file(path)
    key = content_key("inputs", digest, path.suffix.lstrip(".") or "bin")
    if not store.exists(key):
        store.put_file(key, path)
    return key, digest


def _still_frames(face: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop the face image to a square and resize it to `size` (RGB uint8)."""
    h, w = face.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(face[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)


@click.command()
@click.option("--face", type=click.Path(path_type=Path), required=True, help="Face image (png/jpg).")
@click.option(
    "--audio", type=click.Path(path_type=Path), required=True, help="Speech (any format ffmpeg reads)."
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output mp4.")
@click.option("--size", type=int, default=512, show_default=True, help="Output width and height.")
@click.option("--grpc-port", type=int, default=9000, show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Serve config (default: serve_configs/local.yaml).",
)
def render(
    face: Path, audio: Path, output: Path, size: int, grpc_port: int, config_path: Path | None
) -> None:
    """Render a video from a face image and speech (today: the still face; see the note it prints)."""
    from lihq import serving
    from lihq.cli.main import DEFAULT_SERVE_CONFIG
    from lihq.v1 import common_pb2, media_pb2, media_pb2_grpc

    console = Console(stderr=True)
    if size < 16 or size % 2:
        raise InvalidInput("--size must be an even number >= 16 (H.264 yuv420p needs even sizes)")
    console.print(
        "[yellow]note:[/] the model stages (FOMM, Wav2Lip, GFPGAN, ...) are not deployed yet: "
        "this renders the still face with the audio through the media stage."
    )
    store = open_store(StoreConfig.from_env())
    face_rgb = media.load_image(face)
    opts = serving.ServeOptions(
        config_path or DEFAULT_SERVE_CONFIG, grpc_port, None, RayConfig.from_env(), log_to_driver=False
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as prog:
        task = prog.add_task("starting Ray Serve", total=6)
        serving.deploy(opts)
        try:
            ep = StageEndpoint(f"127.0.0.1:{grpc_port}", "media")
            with StageClient(ep, media_pb2_grpc.MediaServiceStub) as client:
                prog.update(task, advance=1, description="ingesting inputs")
                face_key, _ = _upload(store, face)
                audio_key, _ = _upload(store, audio)
                client.call(
                    "Ingest",
                    media_pb2.IngestRequest(
                        upload=common_pb2.ObjectRef(key=face_key),
                        kind=media_pb2.MEDIA_KIND_IMAGE,
                        filename=face.name,
                    ),
                )
                aud = client.call(
                    "Ingest",
                    media_pb2.IngestRequest(
                        upload=common_pb2.ObjectRef(key=audio_key),
                        kind=media_pb2.MEDIA_KIND_AUDIO,
                        filename=audio.name,
                    ),
                )
                prog.update(task, advance=1, description="extracting speech")
                ext = client.call(
                    "ExtractAudio", media_pb2.ExtractAudioRequest(source=aud.input, sample_rates=[16000])
                )
                prog.update(task, advance=1, description="building frames")
                total = max(1, int(round(ext.duration_s * FPS)))
                still = _still_frames(face_rgb, size)
                digest = stage_digest(
                    "cli.still",
                    "none",
                    {"size": size, "fps": FPS, "n": total},
                    [hashlib.sha256(still.tobytes()).hexdigest()],
                )
                packs = []
                for s in range(0, total, SEGMENT):
                    e = min(total, s + SEGMENT)
                    data = pack_frames(np.repeat(still[None], e - s, axis=0), fps=FPS, start=s)
                    info = store.put_bytes(cache_key("cli-still", digest, f"seg_{s:06d}_{e:06d}.lfp"), data)
                    packs.append(common_pb2.ObjectRef(key=info.key, sha256=info.sha256 or ""))
                prog.update(task, advance=1, description="encoding H.264 + AAC")
                render_id = uuid.uuid4().hex[:12]
                enc = client.call(
                    "Encode",
                    media_pb2.EncodeRequest(
                        packs=packs, audio=aud.input, output_key=f"renders/{render_id}/output.mp4"
                    ),
                )
                prog.update(task, advance=1, description="downloading")
                output.parent.mkdir(parents=True, exist_ok=True)
                store.get_file(enc.video.key, output)
                prog.update(task, advance=1, description="done")
        finally:
            serving.shutdown()
    console.print(
        f"wrote {output} ({enc.info.width}x{enc.info.height}, {enc.info.fps:g} fps, "
        f"{enc.info.duration_s:.2f} s; store key {enc.video.key})"
    )
