"""The richer rule language in YAML: phrase options, language, sources, min_outlets, spike."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import RuleLoadError
from monitor.feeds.parse import parse_feed
from monitor.feeds.sources import FeedSource
from monitor.rules.models import Rule, RuleFile, SourceFilter
from monitor.rules.phrases import Phrase
from monitor.rules.ruleset import load_ruleset
from monitor.rules.testing import run_rule_tests
from tests.conftest import RULES

FIXTURE = Path(__file__).parent / "richer_rules"


def issues(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "r.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(tmp_path)
    return [str(i).removeprefix(f"{tmp_path}/") for i in caught.value.issues]


def test_fixture_rules_load_and_their_examples_pass() -> None:
    ruleset = load_ruleset(FIXTURE)
    failed = [f"{r.where}: {r.reason}" for r in run_rule_tests(ruleset) if not r.ok]
    assert failed == []
    by_id = ruleset.by_id
    assert by_id["invasion-fr"].language == "fr"
    assert by_id["mobilisation-exact"].exact
    assert by_id["wires-only"].sources == SourceFilter(only=["wires"])
    assert by_id["coup-corroborated"].min_outlets == 3
    spike = by_id["shelling-spike"].spike
    assert spike is not None and spike.window == timedelta(hours=1) and spike.min_count == 5
    [strikes, airstrikes] = by_id["air-strikes"].match.any
    assert strikes.exact is True and not strikes.case_sensitive
    assert airstrikes.plain and airstrikes == "airstrikes"


def test_plain_rule_files_load_unchanged() -> None:
    ruleset = load_ruleset(RULES)
    for rule in ruleset.rules:
        assert (rule.language, rule.exact, rule.sources, rule.min_outlets, rule.spike) == (
            "en",
            False,
            None,
            1,
            None,
        )
        spec = rule.match
        phrases = [*spec.any, *spec.all, *spec.none, *(spec.near.terms if spec.near else [])]
        assert all(isinstance(p, Phrase) and p.plain for p in phrases)
        # and they dump back to plain strings, as written
        dumped = rule.model_dump(mode="json")["match"]
        assert all(type(p) is str for p in dumped["any"] + dumped["all"] + dumped["none"])
    assert ruleset.tagger.languages == {"en"}
    assert all(r.ok for r in run_rule_tests(ruleset))


def test_a_rule_round_trips_through_its_dump() -> None:
    ruleset = load_ruleset(FIXTURE)
    for rule in ruleset.rules:
        # (python mode: durations dump to ISO 8601 in JSON mode, which the YAML form is not)
        again = Rule.model_validate(rule.model_dump())
        assert (
            Rule.model_validate(
                {**rule.model_dump(), "match": json.loads(rule.match.model_dump_json())}
            )
            == rule
        )
        assert again == rule
        for mine, theirs in zip(again.match.any, rule.match.any, strict=True):
            assert (mine.exact, mine.case_sensitive) == (theirs.exact, theirs.case_sensitive)
    dumped = ruleset.by_id["air-strikes"].model_dump(mode="json")["match"]["any"]
    assert dumped == [{"phrase": "air strikes", "exact": True}, "airstrikes"]
    assert ruleset.by_id["wires-only"].model_dump()["sources"] == {"only": ["wires"], "except": []}


def test_phrase_options_survive_copies_and_pickles() -> None:
    p = Phrase("US", case_sensitive=True)
    for other in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert isinstance(other, Phrase) and other == "US" and other.case_sensitive
    assert p.is_exact() and Phrase("x").is_exact(True) and not Phrase("x", False).is_exact(True)


def test_errors_in_the_new_keys_are_located(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        """\
rules:
  - id: a
    match:
      any: [invasion, {phrase: strikes, exakt: true}, 42, {phrase: US, case: upper}, {exact: true}]
    weight: 10
    language: xx
    sources: {}
    min_outlets: 0
    spike: {window: 1h, baseline: 1h}
  - id: b
    match: {any: [x]}
    weight: 5
    sources: {exept: [a], only: [Bad Name]}
""",
    )
    assert found == [
        "r.yaml:4:41: rules[0].match.any[1].exakt: unknown key",
        "r.yaml:4:55: rules[0].match.any[2]: must be a phrase: text, or a mapping like "
        "{phrase: strikes, exact: true}",
        "r.yaml:4:78: rules[0].match.any[3].case: must be 'sensitive' or 'insensitive'",
        "r.yaml:4:86: rules[0].match.any[4].phrase: is required",
        "r.yaml:6:15: rules[0].language: no stemmer for language 'xx'; use one of ar, ca, cs, "
        "da, de, el, en, es, fi, fr, hu, id, it, lt, nl, no, pl, pt, ro, ru, sr, sv, tr",
        "r.yaml:7:14: rules[0].sources: give 'only' and/or 'except' (feed names or labels)",
        "r.yaml:8:18: rules[0].min_outlets: must be greater than or equal to 1",
        "r.yaml:9:12: rules[0].spike: baseline must be at least twice the window",
        "r.yaml:13:34: rules[1].sources.only[0]: String should match pattern "
        "'^[a-z0-9][a-z0-9._-]*$'",
        "r.yaml:13:15: rules[1].sources.exept: unknown key (hint: did you mean 'except'?)",
    ]


def test_an_overlong_or_empty_plain_phrase_is_still_refused(tmp_path: Path) -> None:
    long = "x" * 201
    found = issues(
        tmp_path, f"rules:\n  - id: a\n    match: {{any: ['', {long}]}}\n    weight: 1\n"
    )
    assert found == [
        "r.yaml:3:19: rules[0].match.any[0]: String should have at least 1 character",
        "r.yaml:3:23: rules[0].match.any[1]: String should have at most 200 characters",
    ]


def test_json_schema_describes_both_phrase_forms() -> None:
    schema = RuleFile.model_json_schema()
    any_items = schema["$defs"]["MatchSpec"]["properties"]["any"]["items"]
    assert any_items["anyOf"][0]["type"] == "string"
    assert any_items["anyOf"][1] == {"$ref": "#/$defs/PhraseOptions"}
    options = schema["$defs"]["PhraseOptions"]
    assert set(options["properties"]) == {"phrase", "exact", "case"}
    assert set(schema["$defs"]["SourceFilter"]["properties"]) == {"only", "except"}
    rule = schema["$defs"]["Rule"]["properties"]
    assert {"language", "exact", "sources", "min_outlets", "spike"} <= set(rule)


def test_feed_labels_reach_the_articles() -> None:
    feed = FeedSource(name="reuters", url="https://x.example/rss", labels=["wires", "en-news"])
    xml = b"""<rss version="2.0"><channel><title>t</title>
      <item><title>Martial law declared</title><link>https://x.example/1</link></item>
    </channel></rss>"""
    [a] = parse_feed(xml, feed, datetime(2021, 12, 14, tzinfo=UTC))
    assert a.labels == ("wires", "en-news") and a.source == "reuters"
    with pytest.raises(ValueError):
        FeedSource(name="x", url="https://x.example/rss", labels=["Not A Label"])
