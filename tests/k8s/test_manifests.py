"""Every kustomization under k8s/ renders to manifests that validate offline, and stays rendered.

What "validates" means is `lihq_cli.k8s.validate` (schemas of built-in kinds and of KubeRay's CRDs made
strict, references, RayService policy, each serveConfigV2 against Ray Serve's schema with unknown keys
rejected, unique route prefixes, importable and buildable apps). The deliberately broken manifests are
in test_bad.py.
"""

from __future__ import annotations

import re

import pytest
import yaml

from lihq_cli.k8s.validate import K8S, REPO, kubectl, load_documents, load_settings, render, validate

SETTINGS = load_settings()
NAMES = [k.name for k in SETTINGS.kustomizations]

# Serve apps whose import path is imported and built (build_app(args)) by the validation. Every app the
# manifests deploy must be in READY_APPS or PENDING_APPS; a pending app's module must NOT import yet
# (test_pending_apps_are_really_missing), so when it lands, move its name to READY_APPS (one line).
READY_APPS = frozenset({"tts", "fomm", "wav2lip", "gfpgan", "qvi", "modnet", "media", "orchestrator"})
PENDING_APPS: frozenset[str] = frozenset()


def rendered_docs(name: str) -> list[dict]:
    return load_documents(SETTINGS.get(name).rendered.read_text())


def serve_configs(docs: list[dict]) -> list[dict]:
    return [yaml.safe_load(d["spec"]["serveConfigV2"]) for d in docs if d["kind"] == "RayService"]


@pytest.mark.parametrize("name", NAMES)
def test_rendered_output_is_current(name):
    if kubectl() is None:
        pytest.skip("kubectl is not installed: the kept k8s/rendered files are validated instead")
    k = SETTINGS.get(name)
    assert render(k.path) == k.rendered.read_text(), (
        f"{k.rendered.relative_to(REPO)} is stale: run `python -m lihq_cli.k8s.validate render`"
    )


@pytest.mark.parametrize("name", NAMES)
def test_rendered_manifests_validate(name):
    k = SETTINGS.get(name)
    problems = validate(rendered_docs(name), SETTINGS, k.external, import_apps=READY_APPS)
    assert not problems, "\n".join(map(str, problems))


def test_every_deployed_app_is_import_checked_or_declared_pending():
    apps = {a["name"] for n in NAMES for cfg in serve_configs(rendered_docs(n)) for a in cfg["applications"]}
    assert apps == READY_APPS | PENDING_APPS, f"unlisted apps: {sorted(apps - READY_APPS - PENDING_APPS)}"
    assert not READY_APPS & PENDING_APPS


@pytest.mark.parametrize("app", sorted(PENDING_APPS) or ["(none pending)"])
def test_pending_apps_are_really_missing(app):
    if app == "(none pending)":
        return
    import importlib

    cfg = serve_configs(rendered_docs("gpu"))[0]
    path = next(a["import_path"] for a in cfg["applications"] if a["name"] == app)
    with pytest.raises(ImportError):
        importlib.import_module(path.partition(":")[0])


def test_serve_config_comes_from_the_overlay_file():
    pairs = (
        ("dev", "overlays/dev"),
        ("gpu", "overlays/gpu"),
        ("swap-media", "examples/swap-media"),
        ("external-s3", "overlays/gpu"),
    )
    for name, src in pairs:
        (svc,) = [d for d in rendered_docs(name) if d["kind"] == "RayService"]
        assert svc["spec"]["serveConfigV2"] == (K8S / src / "serve-config.yaml").read_text(), name


def test_dev_is_cpu_only_and_gpu_has_gpu_workers():
    dev, gpu = rendered_docs("dev"), rendered_docs("gpu")
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(dev)
    assert all(d["ray_actor_options"]["num_gpus"] == 0 for c in serve_configs(dev) for a in c["applications"]
               for d in a["deployments"])  # fmt: skip
    (svc,) = [d for d in gpu if d["kind"] == "RayService"]
    groups = {g["groupName"]: g for g in svc["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and groups["gpu"]["maxReplicas"] > groups["gpu"]["minReplicas"]
    gpu_apps = {a["name"] for c in serve_configs(gpu) for a in c["applications"]
                if any(d["ray_actor_options"]["num_gpus"] > 0 for d in a["deployments"])}  # fmt: skip
    assert gpu_apps == {"tts", "fomm", "wav2lip", "gfpgan", "qvi", "modnet"}


def test_image_recipe_agrees_with_the_manifests():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    ray_version = re.search(r"^ARG RAY_VERSION=(\S+)$", dockerfile, re.M).group(1)
    images = set()
    for name in NAMES:
        for d in rendered_docs(name):
            if d["kind"] in ("RayService", "RayJob"):
                spec = d["spec"].get("rayClusterConfig") or d["spec"]["rayClusterSpec"]
                assert spec["rayVersion"] == ray_version, f"{name}: rayVersion != Dockerfile RAY_VERSION"
            images |= set(re.findall(r"image: (\S+)", yaml.safe_dump(d)))
    lihq_tags = {i.rsplit(":", 1)[1] for i in images if i.startswith("ghcr.io/lihq/lihq:")}
    assert lihq_tags == {"0.1.0-cuda", "0.1.0-cpu"}
    for tag in lihq_tags:  # each tag the manifests use is one the Dockerfile says how to build
        assert f"-t ghcr.io/lihq/lihq:{tag}" in dockerfile
    pyproject = (REPO / "pyproject.toml").read_text()
    for pin in re.findall(r'"(torch(?:vision|audio)?==[^"]+)"', dockerfile):
        assert f'"{pin}"' in pyproject, f"Dockerfile pin {pin} differs from pyproject.toml"


def test_docker_context_holds_what_the_dockerfile_copies():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    sources = [
        s for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M) for s in line.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), src
        assert _docker_included(src, rules), f"{src} is excluded by .dockerignore"
    assert not _docker_included("lihq/v1/media_pb2.py", rules)  # stubs are regenerated in the image
    assert not _docker_included(".venv/bin/python", rules)


def _docker_included(path: str, rules: list[str]) -> bool:
    """.dockerignore semantics, enough for our rules: the last matching rule wins; `!` re-includes."""
    import fnmatch

    included = True
    for rule in rules:
        neg = rule.startswith("!")
        pat = rule[1:] if neg else rule
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            included = neg
    return included
