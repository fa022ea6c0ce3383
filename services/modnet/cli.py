"""`python -m services.modnet VIDEO -o OUT.mp4 --background ...`: background replacement on one machine.

The same runner and compositing code as the `modnet` stage, without a store or a server: decode the
speaker video in chunks, matte each chunk with MODNet, composite it over the background, and encode
H.264 + the source's audio. Optional outputs for editors: `--alpha speaker.webm|.mov` (the placed
speaker with an alpha channel) and `--matte-video matte.mp4` (the placed matte as grey video).
Weights: `--weights PATH`, else the registry (`lihq weights fetch modnet`).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import click
import numpy as np

from lihq import media
from lihq.config import WeightsConfig
from lihq.errors import InvalidInput, LihqError
from lihq.weights import require
from services.modnet.alpha_video import FORMATS, AlphaVideoWriter
from services.modnet.background import VIDEO_ENDS, Background, BackgroundSpec
from services.modnet.compose import FITS, Placement, composite_layers, parse_color
from services.modnet.runner import ModnetConfig, ModnetRunner

CHUNK = 50


def background_spec(value: str, fit: str, offset: float, end: str) -> BackgroundSpec:
    """A file path -> image or video background (probed); anything else -> a colour."""
    path = Path(value)
    if not path.is_file():
        return BackgroundSpec(kind="color", color=parse_color(value))
    kind = "image" if media.probe(path, require_video=True).is_image else "video"
    return BackgroundSpec(kind=kind, path=path, fit=fit, video_offset_s=offset, video_end=end)


def _parse_size(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 0
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InvalidInput(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    return w, h


class _Feed:
    """An iterator fed from another thread: lets `encode_video` (a consumer) run beside the main loop."""

    def __init__(self, out: Path, fps: float) -> None:
        self.q: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(out, fps), daemon=True)
        self.thread.start()

    def _frames(self) -> Iterator[np.ndarray]:
        while (item := self.q.get()) is not None:
            yield from item

    def _run(self, out: Path, fps: float) -> None:
        try:
            media.encode_video(self._frames(), fps, out, crf=18, preset="fast")
        except Exception as exc:  # re-raised in the main thread by close()
            self.error = exc
            while self.q.get() is not None:  # keep draining so the producer never blocks
                pass

    def put(self, frames: np.ndarray) -> None:
        self.q.put(frames)

    def close(self, raise_error: bool = True) -> None:
        self.q.put(None)
        self.thread.join()
        if raise_error and self.error is not None:
            raise self.error


def _composited(
    video: Path, fps: float, runner: ModnetRunner, bg: Background, placement: Placement, size: tuple[int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(composite, placed speaker layer, placed alpha) per chunk of the speaker video."""
    start = 0
    canvas: tuple[int, int] | None = None
    for chunk in media.iter_video(video, fps=fps, chunk=CHUNK):
        if canvas is None:
            canvas = bg.canvas_size((chunk.shape[2], chunk.shape[1]), *size)
        behind = bg.frames(start, len(chunk), fps, canvas)
        yield composite_layers(chunk, runner.matte_uint8(chunk), behind, placement)
        start += len(chunk)


@click.command("matte")
@click.argument("video", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Composite .mp4.")
@click.option("--background", default="white", show_default=True, help="Colour, image file or video file.")
@click.option("--fit", type=click.Choice(FITS), default="stretch", show_default=True)
@click.option("--video-offset", type=float, default=0.0, help="Start of a video background (s).")
@click.option("--video-end", type=click.Choice(VIDEO_ENDS), default="loop", show_default=True)
@click.option("--scale", type=float, default=1.0, show_default=True, help="Speaker resize factor.")
@click.option("--offset", type=(int, int), default=(0, 0), show_default=True, help="Speaker top-left X Y.")
@click.option("--rotation", type=float, default=0.0, help="Counter-clockwise degrees.")
@click.option("--size", default=None, help="Output WxH (default: the background's, or the video's).")
@click.option("--alpha", type=click.Path(path_type=Path), default=None, help="Speaker layer .webm/.mov.")
@click.option("--matte-video", type=click.Path(path_type=Path), default=None, help="Placed matte .mp4.")
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="MODNet checkpoint.")
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option(
    "--ref-size", type=int, default=512, show_default=True, help="MODNet's ref size (upstream 512)."
)
def matte(
    video: Path,
    output: Path,
    background: str,
    fit: str,
    video_offset: float,
    video_end: str,
    scale: float,
    offset: tuple[int, int],
    rotation: float,
    size: str | None,
    alpha: Path | None,
    matte_video: Path | None,
    weights: Path | None,
    device: str,
    precision: str,
    batch_size: int,
    ref_size: int,
) -> None:
    """Cut the speaker out of VIDEO with MODNet and put them on a new background."""
    fmt = {v: k for k, v in FORMATS.items()}.get(alpha.suffix.lower()) if alpha else None
    if alpha is not None and fmt is None:
        raise InvalidInput(f"--alpha {alpha}: use a .webm (VP9) or .mov (ProRes 4444) name")
    info = media.probe(video, require_video=True)
    fps = info.fps or 25.0
    placement = Placement(scale=scale, offset_x=offset[0], offset_y=offset[1], rotation_deg=rotation)
    bg = Background(background_spec(background, fit, video_offset, video_end))
    cfg = ModnetConfig(device=device, precision=precision, batch_size=batch_size, ref_size=ref_size)
    runner = ModnetRunner.from_checkpoint(weights or require("modnet", WeightsConfig.from_env()), cfg)  # type: ignore[arg-type]
    tmp = output.with_name(f".{output.stem}.video{output.suffix}")
    feeds = [_Feed(tmp, fps)] + ([_Feed(matte_video, fps)] if matte_video else [])
    done = False
    try:
        with ExitStack() as stack:
            writer = stack.enter_context(AlphaVideoWriter(alpha, fps, fmt)) if alpha and fmt else None
            for out, fg, a in _composited(video, fps, runner, bg, placement, _parse_size(size)):
                feeds[0].put(out)
                if len(feeds) > 1:
                    feeds[1].put(np.repeat(a[..., None], 3, axis=3))
                if writer is not None:
                    writer.write(fg, a)
        done = True
    finally:
        for feed in feeds:
            feed.close(raise_error=done)
        if not done:
            tmp.unlink(missing_ok=True)
    if info.has_audio:
        media.mux_audio(tmp, video, output)
        tmp.unlink(missing_ok=True)
    else:
        tmp.replace(output)
    click.echo(
        f"wrote {output}" + (f", {alpha}" if alpha else "") + (f", {matte_video}" if matte_video else "")
    )


def main() -> None:
    try:
        matte.main(standalone_mode=False)
    except LihqError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2 if isinstance(exc, InvalidInput) else 1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
