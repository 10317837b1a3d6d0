"""The report: JSON with stable keys (documented in the command's help), tables for people."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from monitor.backtest.compare import Comparison, compare
from monitor.backtest.replay import replay
from monitor.backtest.report import Context, render, to_json
from monitor.cli import rules_backtest
from monitor.models import Article
from monitor.rules.models import MatchSpec, Rule
from monitor.rules.ruleset import RuleSet
from tests.unit.backtest.conftest import Derive

TOP = {
    "input", "since", "until", "old", "new", "articles", "exact_duplicates", "undecodable",
    "stories", "mismatched_articles", "scoring_changed", "routes_changed", "totals", "rules",
    "gained", "lost", "level_changes", "notes",
}  # fmt: skip
TOTALS = {"alerted_stories", "levels", "alerts", "gained", "lost", "level_changes"}
RULE = {"rule", "status", "articles", "alerted_stories", "levels", "gained", "lost"}
CHANGE = {
    "story_id", "title", "url", "first_alert", "old_level", "new_level", "old_rules", "new_rules",
}  # fmt: skip


def _comparison(ruleset: RuleSet, derive: Derive, samples: list[Article]) -> Comparison:
    new_rules = derive(
        drop=("embassy-evacuation",),
        add=(Rule(id="price-war", match=MatchSpec(any=["price war"]), weight=50),),
        weights={"troop-buildup": 90},
    )
    return compare(ruleset, new_rules, replay(ruleset, samples), replay(new_rules, samples))


def test_json_has_the_documented_keys(
    ruleset: RuleSet, derive: Derive, samples: list[Article]
) -> None:
    cmp = _comparison(ruleset, derive, samples)
    doc = to_json(cmp, Context("monitor/samples", Path("old"), Path("new")), limit=1)
    doc = json.loads(json.dumps(doc))  # serialisable as it is
    assert set(doc) == TOP
    assert set(doc["totals"]) == TOTALS
    assert set(doc["totals"]["levels"]) == {"low", "medium", "high", "critical"}
    assert set(doc["totals"]["alerts"]) == {"opened", "escalated", "updated", "resolved"}
    assert set(doc["old"]) == set(doc["new"]) == {"rules", "version", "routes"}
    for row in doc["rules"]:
        assert set(row) == RULE | {"level_changes"}
        assert set(row["articles"]) == {"old", "new"}
    for key in ("gained", "lost", "level_changes"):
        assert len(doc[key]) == 1  # --limit
        assert doc["totals"][key] >= 1
        assert set(doc[key][0]) == CHANGE
    # every key is in the command's help, where users look for them
    help_text = " ".join((rules_backtest.__doc__ or "").split())
    for key in TOP | TOTALS | RULE | CHANGE:
        assert key in help_text, key


def test_limit_zero_lists_everything(
    ruleset: RuleSet, derive: Derive, samples: list[Article]
) -> None:
    cmp = _comparison(ruleset, derive, samples)
    doc = to_json(cmp, Context("x", Path("old"), Path("new")), limit=0)
    assert len(doc["lost"]) == doc["totals"]["lost"] == len(cmp.lost)


def test_tables_show_the_changes_and_never_read_titles_as_markup(
    ruleset: RuleSet, derive: Derive, samples: list[Article]
) -> None:
    marked = [
        a.model_copy(update={"title": a.title + " [red]x[/red]"})
        if "families of embassy staff" in a.title
        else a
        for a in samples
    ]
    new_rules = derive(drop=("embassy-evacuation",))
    cmp = compare(ruleset, new_rules, replay(ruleset, marked), replay(new_rules, marked))
    buf = io.StringIO()
    render(Console(file=buf, width=200), cmp, Context("in", Path("old"), Path("new")), 5, 1.0)
    text = buf.getvalue()
    assert "stories lost (alerted by the old rules only): 1" in text
    assert "[red]x[/red]" in text
    assert "embassy-evacuation" in text
    assert "removed" in text
    assert "stories gained (alerted by the new rules only): none" in text
