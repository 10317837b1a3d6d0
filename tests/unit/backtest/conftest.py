"""The bundled sample feeds as a replay input, and rule sets derived from the starter rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from monitor.backtest.sources import Window, load_input
from monitor.models import Article
from monitor.rules.models import Rule
from monitor.rules.ruleset import RuleSet
from tests.conftest import REPO


@pytest.fixture(scope="session")
def samples() -> list[Article]:
    path = REPO / "monitor" / "samples"
    return load_input(str(path), Window(), now=datetime(2030, 1, 1, tzinfo=UTC)).articles


Derive = Callable[..., RuleSet]


@pytest.fixture
def derive(ruleset: RuleSet) -> Derive:
    """A copy of the starter rules: ``drop`` rule ids, ``add`` rules, ``weights`` changed."""

    def make(
        drop: tuple[str, ...] = (),
        add: tuple[Rule, ...] = (),
        weights: dict[str, float] | None = None,
        routes: bool = True,
    ) -> RuleSet:
        rules = [
            r.model_copy(update={"weight": (weights or {}).get(r.id, r.weight)})
            for r in ruleset.rules
            if r.id not in drop
        ]
        return RuleSet(
            [*rules, *add],
            ruleset.scoring,
            ruleset.routes if routes else [],
            version="derived",
        )

    return make
