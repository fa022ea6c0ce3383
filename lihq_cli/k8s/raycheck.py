"""RayService / RayJob policy (see lihq_cli.k8s.cluster for the list) and the Serve-config-vs-cluster fit."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from lihq_cli.k8s import serveconfig
from lihq_cli.k8s.cluster import GPU, UPGRADE_TYPES, containers, ident, quantity, ray_cluster_spec


@dataclass(frozen=True)
class GroupShape:
    """What one worker pod of a group offers Ray (from its first container's limits, else requests)."""

    name: str
    cpus: float
    gpus: float
    memory: float
    max_replicas: int


def _resources(c: Mapping[str, Any]) -> dict[str, float]:
    res = c.get("resources") or {}
    merged = dict(res.get("requests") or {}) | dict(res.get("limits") or {})
    out = {}
    for k, v in merged.items():
        try:
            out[k] = quantity(v)
        except ValueError:
            out[k] = float("nan")
    return out


def group_shapes(cluster: Mapping[str, Any]) -> list[GroupShape]:
    shapes = []
    for g in cluster.get("workerGroupSpecs") or []:
        cs = (g.get("template", {}).get("spec", {}) or {}).get("containers") or [{}]
        r = _resources(cs[0])
        params = g.get("rayStartParams") or {}
        cpus = float(params.get("num-cpus", r.get("cpu", 0)))
        gpus = float(params.get("num-gpus", r.get(GPU, 0)))
        shapes.append(
            GroupShape(
                str(g.get("groupName")), cpus, gpus, r.get("memory", 0.0), int(g.get("maxReplicas", 0))
            )
        )
    return shapes


def _tolerates_gpu(pod: Mapping[str, Any]) -> bool:
    for t in pod.get("tolerations") or []:
        key_ok = t.get("key") == GPU or (t.get("operator") == "Exists" and not t.get("key"))
        if key_ok and t.get("effect") in (None, "", "NoSchedule"):
            return True
    return False


def check_groups(doc: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    cluster = ray_cluster_spec(doc)
    for g in cluster.get("workerGroupSpecs") or []:
        w = f"{ident(doc)} workerGroup {g.get('groupName')}"
        lo, hi = int(g.get("minReplicas", 0)), int(g.get("maxReplicas", 2**31 - 1))
        n = int(g.get("replicas", lo))
        if not lo <= n <= hi:
            out.append(f"{w}: needs minReplicas <= replicas <= maxReplicas, got {lo} <= {n} <= {hi}")
        pod = g.get("template", {}).get("spec", {}) or {}
        wants_gpu = any(_resources(c).get(GPU, 0) > 0 for c in containers(pod))
        if wants_gpu and not _tolerates_gpu(pod):
            out.append(f"{w}: requests {GPU} but has no toleration for the {GPU} NoSchedule taint")
    return out


def check_auth(doc: Mapping[str, Any]) -> list[str]:
    cluster = ray_cluster_spec(doc)
    auth = cluster.get("authOptions") or {}
    if auth.get("mode") == "token" and auth.get("secretName"):
        return []
    # without authOptions, every Ray container must set RAY_AUTH_MODE=token and the token from a Secret
    pods = [cluster.get("headGroupSpec", {})] + list(cluster.get("workerGroupSpecs") or [])
    for g in pods:
        for c in (g.get("template", {}).get("spec", {}) or {}).get("containers") or []:
            env = {e.get("name"): e for e in c.get("env") or []}
            token_from_secret = "secretKeyRef" in (env.get("RAY_AUTH_TOKEN", {}).get("valueFrom") or {})
            if env.get("RAY_AUTH_MODE", {}).get("value") != "token" or not token_from_secret:
                return [
                    f"{ident(doc)}: Ray token auth is off; set rayClusterConfig.authOptions "
                    "{mode: token, secretName: ...} (or RAY_AUTH_MODE=token + RAY_AUTH_TOKEN from a Secret)"
                ]
    return []


def _check_grpc_ports(doc: Mapping[str, Any], port: int) -> list[str]:
    out = []
    cluster = ray_cluster_spec(doc)
    groups = [("head", cluster.get("headGroupSpec", {}))] + [
        (f"workerGroup {g.get('groupName')}", g) for g in cluster.get("workerGroupSpecs") or []
    ]
    for label, g in groups:
        ray_c = ((g.get("template", {}).get("spec", {}) or {}).get("containers") or [{}])[0]
        ports = {p.get("name"): p.get("containerPort") for p in ray_c.get("ports") or []}
        if ports.get("serve-grpc") != port:
            out.append(f"{ident(doc)} {label}: no container port 'serve-grpc' = {port} (Serve's gRPC proxy)")
    svc_ports = {
        p.get("name"): p
        for p in ((doc["spec"].get("serveService") or {}).get("spec") or {}).get("ports") or []
    }
    grpc = svc_ports.get("serve-grpc")
    if grpc is None or grpc.get("targetPort", grpc.get("port")) not in (port, "serve-grpc"):
        out.append(f"{ident(doc)}: spec.serveService must expose a port 'serve-grpc' targeting {port}")
    return out


# Ray offers a node's memory minus its object store (30 % by default) to tasks and actors.
RAY_MEMORY_SHARE = 0.7


def check_fit(doc: Mapping[str, Any], needs: Iterable[serveconfig.DeploymentNeeds]) -> list[str]:
    """Every deployment fits one pod of some group; the minimum replicas fit the groups at max scale."""
    shapes = group_shapes(ray_cluster_spec(doc))
    out: list[str] = []
    total_gpus = sum(s.gpus * s.max_replicas for s in shapes)
    total_cpus = sum(s.cpus * s.max_replicas for s in shapes)
    total_mem = sum(s.memory * RAY_MEMORY_SHARE * s.max_replicas for s in shapes)
    min_gpus = min_cpus = min_mem = 0.0
    for n in needs:
        w = f"{ident(doc)} serve app {n.app} deployment {n.name}"
        fits = [
            s
            for s in shapes
            if s.gpus >= n.num_gpus and s.cpus >= n.num_cpus and s.memory * RAY_MEMORY_SHARE >= n.memory
        ]
        if n.num_gpus > 0 and not any(s.gpus > 0 for s in shapes):
            out.append(
                f"{w}: asks for {n.num_gpus} GPU but no worker group offers {GPU} (it would wait forever)"
            )
        elif not fits:
            out.append(
                f"{w}: no worker group fits one replica ({n.num_cpus} CPU, {n.num_gpus} GPU, "
                f"{n.memory / 2**30:.1f} GiB); groups: {[(s.name, s.cpus, s.gpus) for s in shapes]}"
            )
        min_gpus += n.num_gpus * n.min_replicas
        min_cpus += n.num_cpus * n.min_replicas
        min_mem += n.memory * n.min_replicas
    for what, need, have in (("GPUs", min_gpus, total_gpus), ("CPUs", min_cpus, total_cpus)):
        if need > have + 1e-9:
            out.append(
                f"{ident(doc)}: min_replicas need {need:g} {what}, worker groups offer {have:g} at most"
            )
    if min_mem > total_mem:
        out.append(
            f"{ident(doc)}: min_replicas need {min_mem / 2**30:.1f} GiB, worker groups offer "
            f"{total_mem / 2**30:.1f} GiB to Ray at most"
        )
    return out


def check_rayservice(doc: Mapping[str, Any], import_apps: Callable[[str], bool] | Iterable[str]) -> list[str]:
    spec = doc.get("spec") or {}
    cluster = ray_cluster_spec(doc)
    out: list[str] = []
    head = cluster.get("headGroupSpec", {})
    if str((head.get("rayStartParams") or {}).get("num-cpus")) != "0":
        out.append(f'{ident(doc)}: head rayStartParams num-cpus must be "0" (the head must not run replicas)')
    if cluster.get("enableInTreeAutoscaling") is not True:
        out.append(f"{ident(doc)}: rayClusterConfig.enableInTreeAutoscaling must be true")
    kind = (spec.get("upgradeStrategy") or {}).get("type")
    if kind not in UPGRADE_TYPES:
        out.append(
            f"{ident(doc)}: spec.upgradeStrategy.type must be chosen explicitly, one of {UPGRADE_TYPES}"
        )
    elif kind == "NewClusterWithIncrementalUpgrade" and not spec["upgradeStrategy"].get(
        "clusterUpgradeOptions"
    ):
        out.append(
            f"{ident(doc)}: NewClusterWithIncrementalUpgrade needs upgradeStrategy.clusterUpgradeOptions"
        )
    out += check_auth(doc) + check_groups(doc)
    text = spec.get("serveConfigV2") or ""
    if not text.strip():
        return [*out, f"{ident(doc)}: spec.serveConfigV2 is empty"]
    out += [f"{ident(doc)} serveConfigV2: {p}" for p in serveconfig.check_serve_config(text, import_apps)]
    raw = yaml.safe_load(text)
    if isinstance(raw, dict):
        out += _check_grpc_ports(doc, int((raw.get("grpc_options") or {}).get("port", 9000)))
        out += check_fit(doc, serveconfig.deployment_needs(raw))
    return out


def check_rayjob(doc: Mapping[str, Any]) -> list[str]:
    out = check_auth(doc) + check_groups(doc)
    if not (doc.get("spec") or {}).get("entrypoint"):
        out.append(f"{ident(doc)}: spec.entrypoint is empty")
    return out
