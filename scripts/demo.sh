#!/usr/bin/env bash
# Make demo inputs that exist offline (NASA's public-domain astronaut portrait bundled in
# scikit-image, speech from espeak-ng) and render them with `lihq render`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo/out.mp4}
mkdir -p demo
.venv/bin/python -c "import skimage.data, PIL.Image; PIL.Image.fromarray(skimage.data.astronaut()).save('demo/face.png')"
espeak-ng -w demo/speech.wav "Hello. I am a talking head rendered by LIHQ, one stage service at a time."
.venv/bin/lihq render --face demo/face.png --audio demo/speech.wav -o "$out"
