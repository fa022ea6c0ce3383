# The one interface: setup, protos, lint, test, bench. CI (.ci/run) calls `make setup test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTOS := $(wildcard protos/lihq/v1/*.proto)

.PHONY: setup system-deps python-deps protos lint format test test-gpu bench demo clean

setup: system-deps python-deps protos

system-deps:
	./scripts/install-system-deps.sh

python-deps:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel
	$(BIN)/python -m pip install -q -e ".[test,bench,tts]"
	# gfpgan/basicsr/facexlib without their deps: they declare opencv-python (a second, GUI cv2 over our
	# headless one) and basicsr builds from source against the torch already installed.
	$(BIN)/python -m pip install -q cython
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -r services/gfpgan/requirements-nodeps.txt

# Generated stubs land in lihq/v1/ (git-ignored): `import lihq.v1.media_pb2` matches `package lihq.v1`.
protos: $(PROTOS)
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	touch lihq/v1/__init__.py

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Everything but the gpu-marked tests (they skip themselves without CUDA anyway).
test:
	$(BIN)/python -m pytest -m "not gpu" -q --durations=25

test-gpu:
	$(BIN)/python -m pytest -m gpu -q

bench:
	$(BIN)/python bench/framepack_bench.py

# Render the offline demo (astronaut portrait + espeak speech) to demo/out.mp4.
demo: setup
	./scripts/demo.sh demo/out.mp4

clean:
	rm -rf lihq/v1 .pytest_cache
