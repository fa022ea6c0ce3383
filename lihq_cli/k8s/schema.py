"""Schema validation of rendered manifests, without a cluster.

Built-in kinds (Namespace, ConfigMap, Secret, Service, StatefulSet, ...) go through the
`kubernetes-validate` package's strict schemas for one Kubernetes version. ray.io kinds go through
the OpenAPI v3 schema of KubeRay's own CRD files, made strict the way an API server with
`fieldValidation=Strict` behaves: `additionalProperties: false` wherever an object lists its
`properties` and does not say `x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PRESERVE = "x-kubernetes-preserve-unknown-fields"


def strict_schema(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema that rejects unknown fields (see the module docstring)."""
    out = copy.deepcopy(schema)
    _strictify(out)
    return out


def _strictify(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _strictify(item)
        return
    if not isinstance(node, dict):
        return
    if "properties" in node and not node.get(PRESERVE) and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for value in node.values():
        _strictify(value)


@lru_cache(maxsize=8)
def crd_validators(crd_dir: Path) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> a Draft 7 validator of the strict schema, for every served CRD version."""
    from jsonschema import Draft7Validator

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out: dict[tuple[str, str], Any] = {}
    files = sorted(Path(crd_dir).glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no CRD files in {crd_dir} (expected KubeRay's ray.io_*.yaml)")
    for path in files:
        crd = yaml.load(path.read_text(), Loader=loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = strict_schema(version["schema"]["openAPIV3Schema"])
            out[(f"{group}/{version['name']}", kind)] = Draft7Validator(schema)
    return out


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def check_document(doc: dict[str, Any], k8s_version: str, crd_dir: Path) -> list[str]:
    """Schema problems of one manifest ('' list when valid). Unknown kinds are a problem too."""
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    validators = crd_validators(Path(crd_dir))
    if (api, kind) in validators:
        errors = sorted(validators[(api, kind)].iter_errors(doc), key=lambda e: list(e.absolute_path))
        return [f"{_path(e.absolute_path)}: {e.message}" for e in errors]
    import kubernetes_validate as kv

    try:
        kv.validate(doc, k8s_version, strict=True)
    except kv.SchemaNotFoundError:
        return [f"no schema for {api} {kind} in Kubernetes {k8s_version} or the CRDs in {crd_dir}"]
    except kv.ValidationError as exc:
        return [f"{_path(exc.path)}: {exc.message}"]
    return []
