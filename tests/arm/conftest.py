"""Fixtures of tests/arm: bundles with several inputs and outputs (built once per session)."""

from tests.runtime.multi_bundles import multi_bundles  # noqa: F401
