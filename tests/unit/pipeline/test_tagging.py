from __future__ import annotations

import pytest

from monitor.pipeline.tagging import Tagger
from monitor.rules.models import MatchSpec, Near, Rule
from monitor.rules.ruleset import RuleSet


def rule(rid: str, **match: object) -> Rule:
    return Rule(id=rid, match=MatchSpec.model_validate(match), weight=10)


def test_seed_title_alone_matches(ruleset: RuleSet, seed: tuple[str, str]) -> None:
    title, _ = seed
    matches = [
        m for m in ruleset.tagger.tag(title, "") if m.rule_id == "military-technical-response"
    ]
    assert matches and matches[0].field == "title"
    assert "militarily and technically" in matches[0].text


def test_seed_body_alone_matches(ruleset: RuleSet, seed: tuple[str, str]) -> None:
    _, body = seed
    matches = [
        m for m in ruleset.tagger.tag("", body) if m.rule_id == "military-technical-response"
    ]
    assert matches and matches[0].field == "body"
    assert "military and technical" in matches[0].text
    assert matches[0].text in matches[0].snippet


def test_match_records_the_words_as_written() -> None:
    tagger = Tagger([rule("mt", any=["military and technical measures"])])
    [m] = tagger.tag("Kremlin vows “Military  and\nTechnical Measures”")
    assert m.text == "Military and Technical Measures"
    assert m.phrase == "military and technical measures"
    assert m.field == "title"


def test_phrases_only_match_whole_words() -> None:
    tagger = Tagger([rule("war", any=["war"])])
    assert tagger.tag("Warsaw summit; software award") == []
    assert [m.rule_id for m in tagger.tag("War looms")] == ["war"]


def test_none_cancels_only_the_hits_it_covers() -> None:
    tagger = Tagger([rule("inv", any=["invasion"], none=["home invasion"])])
    assert tagger.tag("Police arrest man after home invasion") == []
    hits = tagger.tag("After a home invasion in Ohio, talk turned to the invasion of Ukraine")
    assert [m.rule_id for m in hits] == ["inv"]
    assert "invasion of Ukraine" in hits[0].snippet


def test_near_requires_a_term_within_n_words() -> None:
    r = Rule(
        id="inv",
        match=MatchSpec(any=["invasion"], near=Near(terms=["Ukraine", "border"], within=3)),
        weight=10,
    )
    tagger = Tagger([r])
    assert tagger.tag("Invasion of Ukraine feared")
    assert tagger.tag("Fears of an invasion grow along the border")  # 4 words apart
    assert not tagger.tag("Invasion fears grow while a long way off, far beyond, lies Ukraine")
    # proximity does not cross from title to body
    assert not tagger.tag("Invasion fears", "Ukraine says nothing")


def test_all_needs_every_phrase_somewhere() -> None:
    tagger = Tagger([rule("both", all=["nuclear", "alert"])])
    assert not tagger.tag("Nuclear plant restarts")
    assert tagger.tag("Nuclear forces", "placed on alert")


def test_one_rule_reports_title_and_body_separately() -> None:
    tagger = Tagger([rule("mt", any=["militarily and technically"])])
    fields = sorted(
        m.field for m in tagger.tag("respond militarily and technically", "military and technical")
    )
    assert fields == ["body", "title"]


def test_longest_phrase_wins_at_a_position() -> None:
    tagger = Tagger([rule("mt", any=["military and technical", "military and technical measures"])])
    [m] = tagger.tag("to adopt military and technical measures now")
    assert m.text == "military and technical measures"


def test_shared_phrases_between_rules() -> None:
    tagger = Tagger(
        [rule("a", any=["missile strike"]), rule("b", any=["missile strikes", "shelling"])]
    )
    assert sorted(m.rule_id for m in tagger.tag("Missile strikes hit Kyiv")) == ["a", "b"]


def test_disabled_rules_never_fire() -> None:
    r = Rule(id="x", match=MatchSpec(any=["invasion"]), weight=5, enabled=False)
    assert Tagger([r]).tag("invasion") == []


@pytest.mark.parametrize("text", ["", "   ", "!!!", "\x00\u202e"])
def test_empty_or_wordless_text(text: str, ruleset: RuleSet) -> None:
    assert ruleset.tagger.tag(text, text) == []
