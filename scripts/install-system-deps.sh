#!/usr/bin/env bash
# System packages LIHQ needs: ffmpeg (probe/decode/encode) and espeak-ng (offline TTS, test speech);
# chromium + chromium-driver for the browser test of `lihq ui` (tests/ui/test_page.py, headless).
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  echo "system deps present: ffmpeg, espeak-ng, chromium, chromium-driver"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
