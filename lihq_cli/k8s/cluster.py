"""Policy checks across rendered manifests that no schema expresses.

- references: every ConfigMap / Secret / PVC a pod names (envFrom, env valueFrom, volumes, KubeRay
  authOptions) exists in the rendered set or is declared external (with its keys), and named keys exist;
- Services select some workload's pods (KubeRay's own serve Service aside); images are pinned;
  workload containers outside Ray have readiness and liveness probes; objects share one namespace;
- RayService: the head runs no replicas (num-cpus 0), in-tree autoscaling is on, the upgrade strategy is
  stated, Ray token auth is on, the gRPC proxy port is a `serve-grpc` container port on every Ray pod
  and a port of the serve Service, GPU worker groups tolerate the nvidia.com/gpu taint and have
  consistent replica bounds, and every Serve deployment fits some worker group (GPUs, CPUs, memory);
- RayJob: token auth and pinned images as above.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

GPU = "nvidia.com/gpu"
UPGRADE_TYPES = ("None", "NewCluster", "NewClusterWithIncrementalUpgrade")
_SUFFIX = {
    "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$")


def quantity(value: Any) -> float:
    """A Kubernetes quantity ('500m', '48Gi', 2) as a number (cores, bytes, devices)."""
    m = _QUANTITY.match(str(value).strip())
    if not m or (m.group(2) and m.group(2) not in _SUFFIX):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(m.group(1)) * (_SUFFIX[m.group(2)] if m.group(2) else 1.0)


def ident(doc: Mapping[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


@dataclass(frozen=True)
class PodSpec:
    where: str  # e.g. "RayService/lihq workerGroupSpecs[gpu]"
    spec: Mapping[str, Any]
    ray: bool  # a Ray head/worker pod (KubeRay adds its own probes)


def pod_specs(doc: Mapping[str, Any]) -> Iterator[PodSpec]:
    kind, spec, who = doc.get("kind"), doc.get("spec") or {}, ident(doc)
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        yield PodSpec(who, spec.get("template", {}).get("spec", {}), False)
    elif kind == "CronJob":
        yield PodSpec(
            who, spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {}), False
        )
    elif kind == "Pod":
        yield PodSpec(who, spec, False)
    elif kind in ("RayService", "RayJob", "RayCluster"):
        cluster = ray_cluster_spec(doc)
        head = cluster.get("headGroupSpec", {}).get("template", {}).get("spec", {})
        yield PodSpec(f"{who} head", head, True)
        for g in cluster.get("workerGroupSpecs") or []:
            yield PodSpec(
                f"{who} workerGroup {g.get('groupName')}", g.get("template", {}).get("spec", {}), True
            )
        if kind == "RayJob" and spec.get("submitterPodTemplate"):
            yield PodSpec(f"{who} submitter", spec["submitterPodTemplate"].get("spec", {}), False)


def ray_cluster_spec(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = doc.get("spec") or {}
    return {"RayService": spec.get("rayClusterConfig"), "RayJob": spec.get("rayClusterSpec")}.get(
        str(doc.get("kind")), spec
    ) or {}


def containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])


def _objects(docs: list[dict[str, Any]], external: Mapping[str, list[str]]) -> dict[str, set[str] | None]:
    """'Kind/name' -> its keys (None: any key) for ConfigMaps, Secrets and PVCs, rendered or external."""
    out: dict[str, set[str] | None] = {}
    for d in docs:
        if d.get("kind") in ("ConfigMap", "Secret"):
            out[ident(d)] = (
                set(d.get("data") or {}) | set(d.get("stringData") or {}) | set(d.get("binaryData") or {})
            )
        elif d.get("kind") == "PersistentVolumeClaim":
            out[ident(d)] = None
    for name, keys in external.items():
        out[name] = set(keys) if keys else None
    return out


def check_refs(docs: list[dict[str, Any]], external: Mapping[str, list[str]]) -> list[str]:
    objects = _objects(docs, external)
    out: list[str] = []

    def need(where: str, kind: str, name: str | None, key: str | None = None) -> None:
        ref = f"{kind}/{name}"
        if ref not in objects:
            out.append(f"{where}: refers to {ref}, which is neither rendered nor declared external")
        elif key is not None and objects[ref] is not None and key not in objects[ref]:
            out.append(f"{where}: {ref} has no key {key!r} (it has {sorted(objects[ref] or [])})")

    for doc in docs:
        for pod in pod_specs(doc):
            for c in containers(pod.spec):
                w = f"{pod.where} container {c.get('name')}"
                for src in c.get("envFrom") or []:
                    for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                        if field in src and not src[field].get("optional"):
                            need(w, kind, src[field].get("name"))
                for env in c.get("env") or []:
                    vf = env.get("valueFrom") or {}
                    for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                        if field in vf and not vf[field].get("optional"):
                            need(
                                f"{w} env {env.get('name')}",
                                kind,
                                vf[field].get("name"),
                                vf[field].get("key"),
                            )
            for vol in pod.spec.get("volumes") or []:
                w = f"{pod.where} volume {vol.get('name')}"
                if "configMap" in vol:
                    need(w, "ConfigMap", vol["configMap"].get("name"))
                if "secret" in vol:
                    need(w, "Secret", vol["secret"].get("secretName"))
                if "persistentVolumeClaim" in vol:
                    need(w, "PersistentVolumeClaim", vol["persistentVolumeClaim"].get("claimName"))
        auth = ray_cluster_spec(doc).get("authOptions") if doc.get("kind", "").startswith("Ray") else None
        if auth and auth.get("secretName"):
            need(f"{ident(doc)} authOptions", "Secret", auth["secretName"], "auth_token")
    return out


def check_workloads(docs: list[dict[str, Any]]) -> list[str]:
    """Namespaces, pinned images, probes, StatefulSet service names and Service selectors."""
    out: list[str] = []
    namespaces = {d.get("metadata", {}).get("namespace") for d in docs if d.get("kind") != "Namespace"}
    if len(namespaces) != 1 or None in namespaces:
        out.append(f"objects should share one namespace, found {sorted(map(str, namespaces))}")
    pod_labels = []
    for doc in docs:
        tmpl = (doc.get("spec") or {}).get("template") or {}
        pod_labels.append(tmpl.get("metadata", {}).get("labels") or {})
        for pod in pod_specs(doc):
            for c in containers(pod.spec):
                image = str(c.get("image", ""))
                tag = image.rsplit("/", 1)[-1]
                if "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
                    out.append(
                        f"{pod.where} container {c.get('name')}: image {image!r} is not pinned to a tag"
                    )
            if not pod.ray:
                for c in pod.spec.get("containers") or []:
                    missing = [p for p in ("readinessProbe", "livenessProbe") if p not in c]
                    if missing:
                        out.append(f"{pod.where} container {c.get('name')}: no {' / '.join(missing)}")
    services = {d["metadata"]["name"] for d in docs if d.get("kind") == "Service"}
    for doc in docs:
        if doc.get("kind") == "StatefulSet" and doc["spec"].get("serviceName") not in services:
            out.append(
                f"{ident(doc)}: serviceName {doc['spec'].get('serviceName')!r} is not a rendered Service"
            )
        if doc.get("kind") == "Service":
            sel = (doc.get("spec") or {}).get("selector") or {}
            if sel and not any(sel.items() <= labels.items() for labels in pod_labels):
                out.append(f"{ident(doc)}: selector {sel} matches no rendered pod template")
    return out
