"""The KubeRay CRDs are vendored in k8s/crds/ (license + version named) and the validator uses them."""

from __future__ import annotations

from lihq_cli.k8s import schema
from lihq_cli.k8s.validate import CRDS, REPO, load_settings


def test_validator_reads_the_vendored_crds() -> None:
    assert CRDS == REPO / "k8s" / "crds" and load_settings().crd_dir == CRDS
    kinds = {kind for (_, kind) in schema.crd_validators(CRDS)}
    assert {"RayCluster", "RayJob", "RayService", "RayCronJob"} <= kinds
    assert ("ray.io/v1", "RayService") in schema.crd_validators(CRDS)


def test_crds_readme_names_license_and_version() -> None:
    text = (CRDS / "README.md").read_text()
    assert "Apache License 2.0" in text and "v1.7.0" in text
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == [
        "ray.io_rayclusters.yaml",
        "ray.io_raycronjobs.yaml",
        "ray.io_rayjobs.yaml",
        "ray.io_rayservices.yaml",
    ]
