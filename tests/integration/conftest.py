"""Fixtures of the integration tests."""

from __future__ import annotations

from tests.integration.websub_hub import hub  # noqa: F401  (a fixture for the WebSub tests)
