"""Kubernetes support: offline validation of the k8s/ manifests and the weights sync of GPU pods.

- `lihq_cli.k8s.validate`: render every kustomization (kubectl kustomize) and validate what it renders
  (`python -m lihq_cli.k8s.validate check|render`); used by tests/k8s.
- `lihq_cli.k8s.weights`: upload checkpoints to a bucket prefix with a SHA256SUMS object, and sync them
  into a pod before Ray starts (`python -m lihq_cli.k8s.weights upload|sync`).
"""
