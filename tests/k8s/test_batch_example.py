"""The example batch manifest (k8s/examples/batch-render/manifest.jsonl) is one the batch job accepts.

Every line parses as a job and becomes a CreateRender request through the k8s job's own renderer
code, and every `module:attr` the example and the batch job's config name imports (the example once
named a renderer in the wrong module).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from orchestrator.batch import load_renderer, parse_manifest
from orchestrator.batch.render_service import render_request

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "k8s/examples/batch-render/manifest.jsonl"
# `package.module:attribute` references (the renderer factories the batch job loads by name)
_REF = re.compile(r"\b((?:orchestrator|lihq|services)(?:\.\w+)+:[A-Za-z_]\w*)")
_CONFIGS = [EXAMPLE, REPO / "k8s/batch/batch.env", REPO / "k8s/rendered/batch.yaml", REPO / "k8s/README.md"]


def test_every_example_line_is_a_render_request():
    jobs = parse_manifest(EXAMPLE.read_text(), "batches/example/manifest.jsonl")
    assert len(jobs) >= 3
    for job in jobs:
        req = render_request(job)
        [spec] = req.renders
        assert spec.face.key.startswith("inputs/"), job.key
        assert spec.audio.key or spec.text, job.key


@pytest.mark.parametrize("path", _CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_named_factories_import(path):
    refs = sorted(set(_REF.findall(path.read_text())))
    for ref in refs:
        module, attr = ref.split(":")
        assert hasattr(importlib.import_module(module), attr), (
            f"{path.name} names {ref}, which does not exist"
        )
    if path == EXAMPLE:
        assert refs, "the example names the renderer it is for"
        for ref in refs:
            assert callable(load_renderer(ref))
