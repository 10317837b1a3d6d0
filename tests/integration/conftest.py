"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.kafka_support import Deployment, require_kafka
from tests.integration.websub_hub import hub  # noqa: F401  (a fixture for the WebSub tests)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path, require_kafka())
    yield d
    d.stop()
