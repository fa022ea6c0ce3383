#!/usr/bin/env bash
# The README's first command: make offline demo inputs (NASA's public-domain astronaut portrait bundled
# in scikit-image, speech from espeak-ng) and render them with every stage of the recipe.
# No weights can be downloaded on an offline machine, so this renders with SYNTHETIC weights (a smoke
# test: the pipeline is real, the faces are not); with real weights fetched, drop `--weights synthetic`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo/out.mp4}
weights=${LIHQ_DEMO_WEIGHTS:-synthetic}
mkdir -p demo
.venv/bin/python -c "import skimage.data, PIL.Image; PIL.Image.fromarray(skimage.data.astronaut()).save('demo/face.png')"
espeak-ng -w demo/speech.wav "Hello. I am a talking head."
.venv/bin/lihq render --face demo/face.png --audio demo/speech.wav --weights "$weights" --upscale 1 -o "$out"
