"""Validate the k8s/ manifests offline: what each kustomization renders must be deployable as written.

    python -m lihq_cli.k8s.validate render          # kubectl kustomize every kustomization -> k8s/rendered/
    python -m lihq_cli.k8s.validate check           # validate k8s/rendered/*.yaml (no kubectl needed)
    python -m lihq_cli.k8s.validate check FILE...   # validate other rendered manifests

Per document: the schema (`lihq_cli.k8s.schema`: kubernetes-validate for built-in kinds, KubeRay's CRDs
made strict for ray.io kinds, read from the vendored k8s/crds/); across documents: references, images, probes, selectors
(`lihq_cli.k8s.cluster`); RayService/RayJob policy and each serveConfigV2 (`lihq_cli.k8s.raycheck`,
`lihq_cli.k8s.serveconfig`). Which kustomizations exist and what each expects to find in the cluster is
data: k8s/validate.yaml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lihq_cli.k8s import cluster, raycheck, schema

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
CRDS = K8S / "crds"  # KubeRay v1.7.0 CRDs, vendored (k8s/crds/README.md: license, version)


@dataclass(frozen=True)
class Kustomization:
    name: str
    path: Path  # the kustomization directory
    rendered: Path  # where its `kubectl kustomize` output is kept
    external: Mapping[str, list[str]] = field(default_factory=dict)  # "Kind/name" -> keys read


@dataclass(frozen=True)
class Settings:
    kubernetes_version: str
    kustomizations: tuple[Kustomization, ...]
    crd_dir: Path

    def get(self, name: str) -> Kustomization:
        for k in self.kustomizations:
            if k.name == name:
                return k
        raise KeyError(f"no kustomization {name!r} in k8s/validate.yaml")


def load_settings(k8s_dir: Path = K8S, crd_dir: Path | None = None) -> Settings:
    raw = yaml.safe_load((k8s_dir / "validate.yaml").read_text())
    ks = tuple(
        Kustomization(k["name"], k8s_dir / k["path"], k8s_dir / k["rendered"], dict(k.get("external") or {}))
        for k in raw["kustomizations"]
    )
    crds = crd_dir or k8s_dir / "crds"
    return Settings(str(raw["kubernetes_version"]), ks, crds)


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(path: Path) -> str:
    """`kubectl kustomize PATH` (offline: kustomize needs no cluster)."""
    exe = kubectl()
    if exe is None:
        raise RuntimeError("kubectl is not installed: validate the rendered files in k8s/rendered instead")
    proc = subprocess.run([exe, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {proc.stderr.strip()}")
    return proc.stdout


def load_documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@dataclass(frozen=True)
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def validate(
    docs: list[dict[str, Any]],
    settings: Settings,
    external: Mapping[str, list[str]] | None = None,
    import_apps: Callable[[str], bool] | Iterable[str] = (),
) -> list[Problem]:
    """Every problem of one rendered kustomization. `import_apps`: Serve apps to import and build."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for doc in docs:
        who = cluster.ident(doc)
        if who in seen:
            problems.append(Problem(who, "rendered twice (duplicate kind/name)"))
        seen.add(who)
        problems += [
            Problem(who, m) for m in schema.check_document(doc, settings.kubernetes_version, settings.crd_dir)
        ]
        if doc.get("kind") == "RayService":
            problems += [Problem(who, _local(m, who)) for m in raycheck.check_rayservice(doc, import_apps)]
        elif doc.get("kind") == "RayJob":
            problems += [Problem(who, _local(m, who)) for m in raycheck.check_rayjob(doc)]
    problems += [Problem("references", m) for m in cluster.check_refs(docs, external or {})]
    problems += [Problem("workloads", m) for m in cluster.check_workloads(docs)]
    return problems


def _local(message: str, who: str) -> str:
    """Drop the object's own name from the front of a message (Problem.where carries it)."""
    return message.removeprefix(f"{who}: ").removeprefix(f"{who} ")


def _render_all(settings: Settings) -> None:
    for k in settings.kustomizations:
        k.rendered.parent.mkdir(parents=True, exist_ok=True)
        k.rendered.write_text(render(k.path))
        print(f"rendered {k.path.relative_to(REPO)} -> {k.rendered.relative_to(REPO)}")


def _check(settings: Settings, files: list[str]) -> int:
    targets = [(Path(f), {}) for f in files] or [(k.rendered, k.external) for k in settings.kustomizations]
    failed = 0
    for path, external in targets:
        problems = validate(load_documents(path.read_text()), settings, external, import_apps=lambda _: True)
        for p in problems:
            print(f"{path}: {p}")
        print(f"{path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        failed += bool(problems)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = load_settings()
    if args[:1] == ["render"]:
        _render_all(settings)
        return 0
    if args[:1] == ["check"]:
        return _check(settings, args[1:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
