"""The browser test runs against the same `lihq serve` as tests/integration (one Ray start per session)."""

from tests.integration.conftest import lihq_home, serve_stack, synthetic_weights  # noqa: F401
