#!/usr/bin/env bash
# The README's first command: make offline demo inputs (NASA's public-domain astronaut portrait bundled
# in scikit-image, speech from espeak-ng), fetch the default recipe's real weights where their hosts can
# be reached (else say so in one line and fall back to SYNTHETIC weights: the pipeline is real, the
# faces are not), and render with every default stage: FOMM → Wav2Lip → GFPGAN → FOMM + GFPGAN → H.264.
# LIHQ_DEMO_WEIGHTS=real|synthetic forces one; LIHQ_DEMO_TEXT changes the sentence.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo/out.mp4}
# GFPGAN costs seconds per face on a CPU and runs twice per frame: a short sentence keeps a CPU demo
# within minutes (on a GPU say anything: LIHQ_DEMO_TEXT="…")
text=${LIHQ_DEMO_TEXT:-"Hello!"}
mkdir -p demo
.venv/bin/python -c "import skimage.data, PIL.Image; PIL.Image.fromarray(skimage.data.astronaut()).save('demo/face.png')"
espeak-ng -s 240 -w demo/speech-raw.wav "$text"
# espeak pads the end with silence: cut it, so every rendered frame speaks
ffmpeg -y -loglevel error -i demo/speech-raw.wav \
  -af "areverse,silenceremove=start_periods=1:start_threshold=-50dB,areverse" demo/speech.wav
weights=${LIHQ_DEMO_WEIGHTS:-}
if [ -z "$weights" ]; then
  if .venv/bin/lihq weights fetch fomm wav2lip_gan s3fd gfpgan-1.3 facexlib 2>demo/fetch.log; then
    weights=real
  else
    echo "demo: the weights' hosts cannot be reached from here (demo/fetch.log): rendering with SYNTHETIC weights instead"
    weights=synthetic
  fi
fi
config=serve_configs/local.yaml
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  # no GPU: GFPGAN in bfloat16 (1.5x faster on a CPU with AVX-512 BF16; lihq verify gfpgan --precision
  # bf16 measures its deviation) and a 512² result (--upscale 2) keep the demo short
  config=demo/serve-cpu.yaml
  .venv/bin/python - "$config" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open("serve_configs/local.yaml"))
for app in cfg["applications"]:
    if app["name"] == "gfpgan":
        app["args"]["precision"] = "bf16"
yaml.safe_dump(cfg, open(sys.argv[1], "w"), sort_keys=False)
PY
  upscale=(--upscale 2)
else
  upscale=()
fi
.venv/bin/lihq render --face demo/face.png --audio demo/speech.wav --weights "$weights" "${upscale[@]}" \
  --config "$config" -o "$out"
