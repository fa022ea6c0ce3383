"""The `espeak` backend: the espeak-ng binary (Debian package espeak-ng), no weights, fully offline.

Any installed language/voice (`espeak-ng --voices`) plus a variant (`en-us+f3`), rate (words per
minute) and pitch. espeak-ng is deterministic: the same text and options give the same samples. It
speaks at 22.05 kHz; we resample to 24 kHz (polyphase, scipy). Text goes in on stdin (UTF-8), so no
text is ever parsed as a command-line option, and SSML is not interpreted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass

import numpy as np

from lihq.errors import FailedPrecondition, InvalidInput
from services.tts.backends.base import (
    Availability,
    ChunkPolicy,
    SpeechBackend,
    SpeechOptions,
    VoiceInfo,
    to_sample_rate,
)

DEFAULT_RATE_WPM = 175
RATE_RANGE = (80, 450)
PITCH_RANGE = (0, 99)
DEFAULT_VOICE = "en-us"
_VERSION = re.compile(r"text-to-speech:\s*([\w.\-]+)")
_OTHER = re.compile(r"\(([\w-]+)\s+(\d+)\)")


@dataclass(frozen=True)
class EspeakVoice:
    id: str  # what users type: the language code ("en-us"), or the file name when codes collide
    file: str  # what `-v` gets: the voice file relative to espeak-ng-data/voices ("gmw/en-US")
    language: str
    name: str
    gender: str


@dataclass(frozen=True)
class EspeakCatalog:
    voices: dict[str, EspeakVoice]  # by lower-case id
    aliases: dict[str, str]  # other language codes a voice answers to ("en" -> "en-gb"), as espeak-ng
    variants: dict[str, str]  # lower-case variant id -> its file name ("f3" -> "f3", "alex" -> "Alex")

    def find(self, vid: str) -> EspeakVoice | None:
        return self.voices.get(vid) or self.voices.get(self.aliases.get(vid, ""))


@dataclass(frozen=True)
class _Row:
    language: str
    gender: str
    name: str
    file: str
    others: tuple[tuple[str, int], ...]  # (language code, priority): lower priority wins


def parse_voice_table(out: str) -> list[_Row]:
    """Rows of an `espeak-ng --voices[=...]` table.

    Columns: Pty Language Age/Gender VoiceName File [Other Languages "(en 2)(en-gb 3)"]; names and
    files never contain spaces.
    """
    rows = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[0].isdigit():
            others = tuple((c.lower(), int(p)) for c, p in _OTHER.findall(" ".join(parts[5:])))
            rows.append(_Row(parts[1].lower(), parts[2].split("/")[-1], parts[3], parts[4], others))
    return rows


def build_catalog(voice_table: str, variant_table: str) -> EspeakCatalog:
    """Voices (mbrola ones skipped: they need the separate mbrola program), aliases and variants."""
    voices: dict[str, EspeakVoice] = {}
    best: dict[str, tuple[int, str]] = {}
    for row in parse_voice_table(voice_table):
        if row.file.startswith("mb/"):
            continue
        vid = row.language
        if vid in voices:  # two voices for one language code: the second is known by its file name
            vid = row.file.split("/")[-1].lower()
        voices[vid] = EspeakVoice(vid, row.file, row.language, row.name.replace("_", " "), row.gender)
        for code, prio in row.others:
            if code not in best or prio < best[code][0]:
                best[code] = (prio, vid)
    aliases = {code: vid for code, (_, vid) in best.items() if code not in voices}
    variants = {}
    for row in parse_voice_table(variant_table):
        base = row.file.split("/")[-1]
        variants[base.lower()] = base
    return EspeakCatalog(voices, aliases, variants)


def wav_bytes_to_float(data: bytes) -> tuple[np.ndarray, int]:
    """Decode espeak-ng's `--stdout` WAV (16-bit PCM; its size fields are placeholders) to float32."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise FailedPrecondition("espeak-ng did not write a WAV stream")
    pos, rate, bits, channels = 12, 0, 0, 1
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"fmt ":
            channels = int.from_bytes(data[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
            bits = int.from_bytes(data[pos + 22 : pos + 24], "little")
        elif cid == b"data":
            if bits != 16 or not rate:
                raise FailedPrecondition(f"espeak-ng wrote an unexpected WAV format ({bits}-bit, {rate} Hz)")
            body = data[pos + 8 :]
            body = body[: len(body) - len(body) % (2 * channels)]
            pcm = np.frombuffer(body, dtype="<i2").reshape(-1, channels)[:, 0]
            return pcm.astype(np.float32) / 32768.0, rate
        pos += 8 + size + (size & 1)
    raise FailedPrecondition("espeak-ng's WAV stream has no data chunk")


class EspeakBackend(SpeechBackend):
    name = "espeak"
    chunking = ChunkPolicy(target_chars=300, max_chars=600)

    def __init__(self, binary: str = "espeak-ng", timeout_s: float = 120.0) -> None:
        self.binary = binary
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._catalog: EspeakCatalog | None = None
        self._version: str | None = None

    # -- the binary ------------------------------------------------------------------------------
    def _path(self) -> str:
        path = shutil.which(self.binary)
        if path is None:
            raise FailedPrecondition(
                f"{self.binary} is not installed: `sudo apt-get install espeak-ng` (Debian/Ubuntu), "
                "or run `make system-deps`"
            )
        return path

    def _run(self, args: list[str], stdin: bytes | None = None) -> bytes:
        try:
            proc = subprocess.run(
                [self._path(), *args], input=stdin, capture_output=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise FailedPrecondition(f"espeak-ng took longer than {self.timeout_s:.0f} s") from exc
        if proc.returncode != 0:
            reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise FailedPrecondition(f"espeak-ng failed: {reason[-1] if reason else proc.returncode}")
        return proc.stdout

    def catalog(self) -> EspeakCatalog:
        with self._lock:
            if self._catalog is None:
                voices = self._run(["--voices"]).decode("utf-8", "replace")
                variants = self._run(["--voices=variant"]).decode("utf-8", "replace")
                self._catalog = build_catalog(voices, variants)
            return self._catalog

    def version(self) -> str:
        if self._version is None:
            m = _VERSION.search(self._run(["--version"]).decode("utf-8", "replace"))
            self._version = m.group(1) if m else "unknown"
        return self._version

    # -- the interface ---------------------------------------------------------------------------
    def availability(self) -> Availability:
        if shutil.which(self.binary) is None:
            return Availability(False, f"{self.binary} is not installed (`sudo apt-get install espeak-ng`)")
        return Availability(True)

    def model_id(self) -> str:
        return f"espeak-ng:{self.version()}"

    def warm(self) -> None:
        self.catalog()

    def voices(self) -> list[VoiceInfo]:
        cat = self.catalog()
        out = [
            VoiceInfo(v.id, self.name, v.language, f"{v.name} ({'female' if v.gender == 'F' else 'male'})")
            for v in cat.voices.values()
        ]
        out += [
            VoiceInfo(f"+{vid}", self.name, "", f"variant {name}: append to any voice, e.g. en-us+{vid}")
            for vid, name in cat.variants.items()
        ]
        return out

    def resolve(
        self, voice: str, language: str, preset: str, seed: int, rate_wpm: int, pitch: int | None
    ) -> SpeechOptions:
        self.check_preset(preset)
        if rate_wpm and not RATE_RANGE[0] <= rate_wpm <= RATE_RANGE[1]:
            raise InvalidInput(f"rate {rate_wpm} wpm: expected {RATE_RANGE[0]}-{RATE_RANGE[1]} (default 175)")
        if pitch is not None and not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
            raise InvalidInput(f"pitch {pitch}: expected {PITCH_RANGE[0]}-{PITCH_RANGE[1]} (default 50)")
        cat = self.catalog()
        language = language.strip().lower().replace("_", "-")
        base, _, variant = (voice.strip().lower() or language or DEFAULT_VOICE).partition("+")
        v = self._voice(cat, base)
        if variant and variant not in cat.variants:
            raise InvalidInput(
                f"unknown espeak variant {variant!r}; some that work: "
                f"{', '.join(sorted(cat.variants)[:12])} (ListVoices lists all)"
            )
        if language:
            self._voice(cat, language)  # an installed language?
            if v.language.split("-")[0] != language.split("-")[0]:
                raise InvalidInput(f"voice {v.id!r} speaks {v.language!r}, not {language!r}")
        vid = f"{v.id}+{variant}" if variant else v.id
        return SpeechOptions(self.name, vid, v.language, "", int(seed), int(rate_wpm), pitch)

    def _voice(self, cat: EspeakCatalog, vid: str) -> EspeakVoice:
        found = cat.find(vid)
        if found is not None:
            return found
        near = sorted(k for k in cat.voices if k.split("-")[0] == vid.split("-")[0])
        hint = f"did you mean {', '.join(near[:8])}?" if near else "`lihq tts --list-voices` lists them"
        raise InvalidInput(f"espeak-ng has no voice or language {vid!r} installed; {hint}")

    def render(self, text: str, opts: SpeechOptions, voice_latents: bytes | None = None) -> np.ndarray:
        if voice_latents is not None:
            self.voice_from_clips([])
        cat = self.catalog()
        base, _, variant = opts.voice.partition("+")
        arg = self._voice(cat, base).file + (f"+{cat.variants[variant]}" if variant else "")
        args = ["-v", arg, "-s", str(opts.rate_wpm or DEFAULT_RATE_WPM), "-b", "1", "--stdin", "--stdout"]
        if opts.pitch is not None:
            args += ["-p", str(opts.pitch)]
        samples, rate = wav_bytes_to_float(self._run(args, text.encode("utf-8")))
        return to_sample_rate(samples, rate)
