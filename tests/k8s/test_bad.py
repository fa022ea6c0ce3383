"""Deliberately broken manifests (k8s/testdata/bad/) fail validation, and only for their own reason.

Each file is k8s/testdata/good.yaml (which validates) with one flaw; its `# expect:` lines name the
problems that flaw must produce. Every problem reported must match one of them, and each of them
must be reported.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lihq_cli.k8s.schema import PRESERVE, strict_schema
from lihq_cli.k8s.validate import K8S, load_documents, load_settings, validate

SETTINGS = load_settings()
BAD = sorted((K8S / "testdata" / "bad").glob("*.yaml"))


def problems_of(path: Path) -> list[str]:
    return [str(p) for p in validate(load_documents(path.read_text()), SETTINGS, {}, import_apps={"media"})]


def test_the_good_minimal_system_validates():
    assert problems_of(K8S / "testdata" / "good.yaml") == []


def test_there_are_bad_cases_for_each_layer():
    names = {p.stem for p in BAD}
    assert {"rayservice-unknown-field", "serve-duplicate-route-prefix", "serve-bad-import-path",
            "gpu-missing-toleration", "builtin-unknown-field", "rayjob-unknown-field"} <= names  # fmt: skip


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_manifest_fails_for_its_reason(path):
    expected = [
        line.removeprefix("# expect: ")
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]
    assert expected, f"{path.name} has no '# expect:' line"
    problems = problems_of(path)
    assert problems, f"{path.name} validated, but it is broken on purpose"
    unexplained = [p for p in problems if not any(e in p for e in expected)]
    missing = [e for e in expected if not any(e in p for p in problems)]
    assert not unexplained and not missing, f"unexplained: {unexplained}\nmissing: {missing}"


def test_strict_schema_closes_listed_objects_only():
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"x": {"type": "string"}}},
            "free": {"type": "object", PRESERVE: True, "properties": {"y": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"z": {"type": "integer"}}}},
        },
    }
    s = strict_schema(schema)
    assert s["additionalProperties"] is False and s["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in s["properties"]["free"]
    assert s["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert s["properties"]["items"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the input is not modified
