#!/usr/bin/env bash
# One command that measures LIHQ on a GPU (or, with --quick, checks on CPU that the suite still runs).
#
#   bench/gpu_suite.sh [--quick] [--parts stages e2e tests] [--stages fomm ...] [--out DIR]
#
# On a bare machine it first installs what bench/gpu_wheels.sh put into .whl/ (wheels, a static
# ffmpeg + ffprobe, the conformance vectors) into /tmp; then runs bench/gpu_suite.py (see its
# docstring and bench/README.md, "GPU suite"). Everything it cannot do is printed as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
WHL=${LIHQ_WHEELS:-.whl}
PY=${PYTHON:-}
if [[ -z $PY ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
SITE=${LIHQ_SUITE_SITE:-/tmp/lihq-suite-site}
BIN=${LIHQ_SUITE_BIN:-/tmp/lihq-suite-bin}

if [[ -d $WHL ]] && ls "$WHL"/*.whl >/dev/null 2>&1 &&
  ! "$PY" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))" \
    zstandard platformdirs ffmpeg minio grpc_health grpc_reflection gfpgan basicsr facexlib 2>/dev/null; then
  mapfile -t REQS < <(grep -v '^\s*#' bench/gpu_requirements.txt | grep -vE '^\s*$')
  echo "installing ${#REQS[@]} wheels from $WHL into $SITE" >&2
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --find-links "$WHL" --target "$SITE" "${REQS[@]}"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
if [[ -d $SITE ]] && [[ ":${PYTHONPATH:-}:" != *":$SITE:"* ]]; then
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! command -v ffprobe >/dev/null && [[ -f $WHL/ffmpeg-static.tar.xz ]]; then
  if [[ ! -x $BIN/ffprobe ]]; then
    echo "unpacking a static ffmpeg + ffprobe into $BIN" >&2
    mkdir -p "$BIN"
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
      "$WHL/ffmpeg-static.tar.xz" "$BIN"
    chmod +x "$BIN"/ff*
  fi
  export PATH="$BIN:$PATH"
fi
if [[ -z ${LIHQ_REFERENCE_DIR:-} ]] && [[ -d $WHL/reference ]]; then
  export LIHQ_REFERENCE_DIR="$PWD/$WHL/reference"
fi
if [[ ! -f lihq/v1/__init__.py ]]; then
  if "$PY" -c "import grpc_tools" 2>/dev/null; then
    make protos PY="$PY" BIN="$(dirname "$PY")" >/dev/null
  else
    echo "error: lihq/v1 (generated gRPC stubs) is missing and grpc_tools is not installed: carry lihq/v1" >&2
    exit 1
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m bench.gpu_suite "$@"
