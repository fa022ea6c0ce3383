"""`lihq tts`: speak text to a WAV file, in-process (no Ray, no object store).

With no neural weights present it speaks with espeak-ng and says so; `--backend tortoise` / `bark`
use their weights from LIHQ_WEIGHTS_DIR (`lihq weights fetch tortoise`). Errors are typed
(`lihq.errors`); the `lihq` group prints them as one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lihq.errors import InvalidInput

_OUTPUT_EXTS = (".wav",)


def _print_voices(backend: str, language: str) -> None:
    from services.tts.runner import TtsRunner, TtsRunnerConfig

    runner = TtsRunner(TtsRunnerConfig.from_env())
    for name in runner.backend_names(backend):
        a = runner.backend(name).availability()
        click.echo(f"# {name}: {'available' if a.available else 'unavailable: ' + a.reason}")
        for v in runner.list_voices(name, language):
            click.echo(f"{v.id}\t{v.language or '-'}\t{v.description}")


@click.command("tts")
@click.argument("text", required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output WAV (mono 24 kHz).")
@click.option(
    "-f", "--text-file", type=click.Path(path_type=Path, dir_okay=False), help="Read the text from a file."
)
@click.option(
    "--backend", default="", help="espeak | tortoise | bark (default: the best one with weights present)."
)
@click.option(
    "--voice", default="", help="Voice id (see --list-voices); tortoise also 'random' and blends 'a&b'."
)
@click.option("--language", default="", help="Language code, e.g. en, de, fr-fr.")
@click.option("--preset", default="", help="tortoise: ultra_fast | fast | standard | high_quality.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same speech.")
@click.option("--rate", type=int, default=0, help="espeak: words per minute (80-450; default 175).")
@click.option("--pitch", type=int, default=None, help="espeak: 0-99 (default 50).")
@click.option(
    "--clip",
    "clips",
    multiple=True,
    type=click.Path(path_type=Path),
    help="tortoise: a reference clip of the voice to clone (repeat 3-5 times).",
)
@click.option(
    "--leading-silence",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds of silence first (LIHQ: 0.3-0.5).",
)
@click.option("--normalize/--no-normalize", default=False, show_default=True, help="Loudness to -20 dBFS.")
@click.option("--pcm16", is_flag=True, help="Write 16-bit PCM instead of 32-bit float.")
@click.option("--manifest", type=click.Path(path_type=Path), help="Also write the JSON manifest here.")
@click.option("--workers", type=int, default=2, show_default=True, help="Chunks rendered in parallel.")
@click.option(
    "--list-voices", is_flag=True, help="List backends and voices (filtered by --backend/--language)."
)
def tts(
    text: str | None,
    output: Path | None,
    text_file: Path | None,
    backend: str,
    voice: str,
    language: str,
    preset: str,
    seed: int,
    rate: int,
    pitch: int | None,
    clips: tuple[Path, ...],
    leading_silence: float,
    normalize: bool,
    pcm16: bool,
    manifest: Path | None,
    workers: int,
    list_voices: bool,
) -> None:
    """Speak TEXT into a WAV file: lihq tts "Hello there." -o hello.wav"""
    if list_voices:
        _print_voices(backend.strip().lower(), language)
        return
    text = _text(text, text_file)
    if output is None:
        raise InvalidInput("give an output file: -o speech.wav")
    if output.suffix.lower() not in _OUTPUT_EXTS:
        raise InvalidInput(f"output {output}: only .wav is written (got {output.suffix or 'no extension'})")
    for c in clips:
        if not c.is_file():
            raise InvalidInput(f"reference clip {c}: no such file")
    from lihq import media
    from services.tts.backends import SAMPLE_RATE
    from services.tts.runner import TtsRunner, TtsRunnerConfig

    runner = TtsRunner(TtsRunnerConfig.from_env())
    result = runner.synthesize(
        text,
        backend=backend.strip().lower(),
        voice=voice,
        language=language,
        preset=preset.strip().lower(),
        seed=seed,
        rate_wpm=rate,
        pitch=pitch,
        clip_paths=list(clips),
        leading_silence_s=leading_silence,
        normalize=normalize,
        workers=workers,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    media.write_wav(output, result.audio, SAMPLE_RATE, pcm16=pcm16)
    if manifest is not None:
        manifest.write_text(json.dumps(result.manifest(wav=str(output)), indent=1, ensure_ascii=False) + "\n")
    o = result.plan.options
    if result.plan.note:
        click.echo(f"note: {result.plan.note}", err=True)
    click.echo(
        f"{output}: {result.duration_s:.2f} s, {o.backend} voice {o.voice}"
        f"{' preset ' + o.preset if o.preset else ''}, {len(result.plan.chunks)} chunk(s), model {result.plan.model_id}"
    )


def _text(text: str | None, text_file: Path | None) -> str:
    if text is not None and text_file is not None:
        raise InvalidInput("give the text as an argument or with --text-file, not both")
    if text_file is not None:
        try:
            return text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {text_file}: {exc}") from exc
    if text is None:
        raise InvalidInput('give the text to speak: lihq tts "Hello there." -o hello.wav')
    return text
