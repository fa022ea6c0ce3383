"""The hostile-input suite runs against the same `lihq serve` as tests/integration (one Ray start)."""

from tests.integration.conftest import lihq_home, serve_stack, synthetic_weights  # noqa: F401
