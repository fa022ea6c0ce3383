#!/usr/bin/env bash
# The README's first command: make offline demo inputs (NASA's public-domain astronaut portrait bundled
# in scikit-image, speech from espeak-ng), fetch the default recipe's real weights where their hosts can
# be reached (else say so in one line and fall back to SYNTHETIC weights: the pipeline is real, the
# faces are not), and render with every default stage: FOMM → Wav2Lip → GFPGAN → FOMM + GFPGAN → H.264.
# LIHQ_DEMO_WEIGHTS=real|synthetic forces one; LIHQ_DEMO_TEXT changes the sentence.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo/out.mp4}
text=${LIHQ_DEMO_TEXT:-"Hello, I am a talking head."}
mkdir -p demo
.venv/bin/python -c "import skimage.data, PIL.Image; PIL.Image.fromarray(skimage.data.astronaut()).save('demo/face.png')"
espeak-ng -s 190 -w demo/speech.wav "$text"
weights=${LIHQ_DEMO_WEIGHTS:-}
if [ -z "$weights" ]; then
  if .venv/bin/lihq weights fetch fomm wav2lip_gan s3fd gfpgan-1.3 facexlib 2>demo/fetch.log; then
    weights=real
  else
    echo "demo: the weights' hosts cannot be reached from here (demo/fetch.log): rendering with SYNTHETIC weights instead"
    weights=synthetic
  fi
fi
# --upscale 2: 512² output keeps the CPU render short; drop it (default ×4, 1024²) on a GPU
.venv/bin/lihq render --face demo/face.png --audio demo/speech.wav --weights "$weights" --upscale 2 -o "$out"
