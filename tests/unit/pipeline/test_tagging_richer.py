"""Richer rule language in the tagger: exact and case-sensitive phrases, languages, sources."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.pipeline.ingest import tag_article
from monitor.pipeline.tagging import Tagger
from monitor.pipeline.text import language_code, stems, tokens
from monitor.rules.models import Rule
from tests.unit.pipeline.helpers import article


def rule(rid: str, match: dict[str, Any], **extra: Any) -> Rule:
    return Rule.model_validate({"id": rid, "match": match, "weight": 10, **extra})


def fired(tagger: Tagger, title: str, body: str = "", **kw: Any) -> list[str]:
    return sorted({m.rule_id for m in tagger.tag(title, body, **kw)})


# ------------------------------------------------------------------------ exact phrases ----


def test_plain_phrases_are_stemmed_exact_ones_are_not() -> None:
    tagger = Tagger(
        [
            rule("stemmed", {"any": ["strikes"]}),
            rule("exact", {"any": [{"phrase": "strikes", "exact": True}]}),
        ]
    )
    assert fired(tagger, "Air strikes on the capital") == ["exact", "stemmed"]
    assert fired(tagger, "AIR STRIKES ON THE CAPITAL") == ["exact", "stemmed"]  # any case
    assert fired(tagger, "Drone strike on the capital") == ["stemmed"]
    assert fired(tagger, "Workers striking at the port") == ["stemmed"]


def test_exact_multiword_phrase_and_british_spelling() -> None:
    tagger = Tagger([rule("mob", {"any": [{"phrase": "general mobilisation", "exact": True}]})])
    assert fired(tagger, "Kremlin orders General Mobilisation") == ["mob"]
    # the stemmer's -ise/-ize fold would merge these; an exact phrase keeps its spelling
    assert fired(tagger, "Kremlin orders general mobilization") == []
    assert fired(tagger, "Kremlin orders general mobilisations") == []


def test_rule_level_exact_with_a_stemmed_exception() -> None:
    tagger = Tagger(
        [rule("r", {"any": ["shelling", {"phrase": "invade", "exact": False}]}, exact=True)]
    )
    assert fired(tagger, "Heavy shelling overnight") == ["r"]
    assert fired(tagger, "Town shelled overnight") == []  # rule-level exact
    assert fired(tagger, "Troops invaded overnight") == ["r"]  # exact: false on the phrase


def test_exact_none_phrase_cancels_only_its_own_form() -> None:
    tagger = Tagger(
        [rule("inv", {"any": ["invasion"], "none": [{"phrase": "home invasion", "exact": True}]})]
    )
    assert fired(tagger, "Police report a home invasion") == []
    assert fired(tagger, "Police report home invasions") == ["inv"]  # not the exact form


def test_exact_and_stemmed_versions_of_one_phrase_in_all_are_distinct() -> None:
    tagger = Tagger(
        [rule("r", {"all": ["strikes", {"phrase": "strikes", "exact": True}]})],
    )
    # "strike" satisfies the stemmed one only: the exact one is missing
    assert fired(tagger, "A strike") == []
    assert fired(tagger, "Strikes") == ["r"]


def test_exact_match_reports_the_phrase_as_written() -> None:
    [m] = Tagger([rule("r", {"any": [{"phrase": "strikes", "exact": True}]})]).tag("New STRIKES")
    assert m.phrase == "strikes" and type(m.phrase) is str
    assert m.text == "STRIKES"


# ------------------------------------------------------------------- case-sensitive -------


def test_case_sensitive_acronym() -> None:
    tagger = Tagger([rule("us", {"any": [{"phrase": "US", "case": "sensitive"}]})])
    assert fired(tagger, "US troops head to the border") == ["us"]
    assert fired(tagger, "Tell us what you think") == []
    assert fired(tagger, "Us and them") == []
    assert fired(tagger, "", "Officials in the US said") == ["us"]
    # case-sensitive implies exact: no stemming
    shell = Tagger([rule("shell", {"any": [{"phrase": "Shell", "case": "sensitive"}]})])
    assert fired(shell, "Shell profits soar") == ["shell"]
    assert fired(shell, "Shells fall on the town") == []
    assert fired(shell, "Shelling of the town") == []


def test_headline_in_capitals_still_matches_case_sensitive_phrases() -> None:
    tagger = Tagger(
        [
            rule("us", {"any": [{"phrase": "US", "case": "sensitive"}]}),
            rule("may", {"any": [{"phrase": "Theresa May", "case": "sensitive"}]}),
        ]
    )
    assert fired(tagger, "US TROOPS MASS AT BORDER") == ["us"]
    assert fired(tagger, "THERESA MAY RESIGNS") == ["may"]
    # case matters again as soon as the text has lower case
    assert fired(tagger, "THERESA MAY resigns") == []
    assert fired(tagger, "Theresa May resigns", "tell us more") == ["may"]


def test_plain_acronyms_stay_case_insensitive() -> None:
    # No automatic case sensitivity: "Nato" (British style) must keep matching NATO.
    tagger = Tagger([rule("nato", {"any": ["NATO"]})])
    assert fired(tagger, "Nato summit opens") == ["nato"]
    assert fired(tagger, "NATO summit opens") == ["nato"]


def test_case_sensitive_near_terms() -> None:
    tagger = Tagger(
        [
            rule(
                "r",
                {
                    "any": ["troops"],
                    "near": {"terms": [{"phrase": "US", "case": "sensitive"}], "within": 3},
                },
            )
        ]
    )
    assert fired(tagger, "US troops deploy") == ["r"]
    assert fired(tagger, "Give us troops") == []


# ------------------------------------------------------------------------- languages ------


@pytest.mark.parametrize(
    ("language", "phrase", "text"),
    [
        ("fr", "frappe aérienne", "Nouvelles frappes aériennes sur la capitale"),
        ("de", "Truppenaufmarsch", "Berichte über Truppenaufmärsche an der Grenze"),
        ("de", "Angriff", "Neue Angriffe im Osten"),
        ("es", "invasión", "Temor a nuevas invasiones"),
        ("ru", "вторжение", "Угроза вторжения растёт"),
        ("en", "invade", "Troops invaded at dawn"),
    ],
)
def test_a_rule_matches_inflections_in_its_own_language(
    language: str, phrase: str, text: str
) -> None:
    tagger = Tagger([rule("r", {"any": [phrase]}, language=language)])
    assert fired(tagger, text, language=language) == ["r"]


def test_rules_match_articles_of_their_language_only() -> None:
    tagger = Tagger(
        [
            rule("en-inv", {"any": ["invasion"]}),
            rule("fr-inv", {"any": ["invasion"]}, language="fr"),
        ]
    )
    assert fired(tagger, "Invasion feared") == ["en-inv"]  # no language: English
    assert fired(tagger, "Invasion feared", language="en-GB") == ["en-inv"]
    assert fired(tagger, "Invasion redoutée", language="fr") == ["fr-inv"]
    assert fired(tagger, "Invasion redoutée", language="fra") == ["fr-inv"]
    assert fired(tagger, "Invasion", language="de") == []  # no German rule
    assert fired(tagger, "Invasion", language="ja") == []  # no stemmer, no rule


def test_english_folds_do_not_apply_to_other_languages() -> None:
    assert stems("mobilisation") == stems("mobilization")
    assert stems("mobilisation", "fr") != stems("mobilization", "fr")


def test_language_codes() -> None:
    assert [language_code(t) for t in ("en", "en-GB", "EN_us", "fra", "deu", "nb", "ja")] == [
        "en",
        "en",
        "en",
        "fr",
        "de",
        "no",
        "ja",
    ]


def test_rule_language_is_checked_and_normalised() -> None:
    assert rule("r", {"any": ["x"]}, language="FR").language == "fr"
    assert rule("r", {"any": ["x"]}, language="ger").language == "de"
    with pytest.raises(ValueError, match="no stemmer for language 'uk'"):
        rule("r", {"any": ["x"]}, language="uk")


def test_exact_phrases_in_another_language() -> None:
    tagger = Tagger(
        [rule("r", {"any": [{"phrase": "Frappes", "exact": True}]}, language="fr")],
    )
    assert fired(tagger, "Nouvelles frappes", language="fr") == ["r"]
    assert fired(tagger, "Nouvelle frappe", language="fr") == []


def test_tag_article_uses_the_article_language_and_tokens() -> None:
    tagger = Tagger([rule("ru", {"any": ["вторжение"]}, language="ru")])
    a = article("Угроза вторжения растёт").model_copy(update={"language": "ru"})
    assert [m.rule_id for m in tag_article(a, tagger).matches] == ["ru"]
    en = article("Угроза вторжения растёт")  # the same words from an English feed
    assert tag_article(en, tagger).matches == ()
    assert tokens("вторжения", "ru")[0].stem == "вторжен"


def test_one_automaton_per_language() -> None:
    tagger = Tagger(
        [
            rule("a", {"any": ["x"]}),
            rule("b", {"any": ["y"]}, language="fr"),
            rule("c", {"any": ["z"]}, language="fr", enabled=False),
        ]
    )
    assert tagger.languages == {"en", "fr"}


# --------------------------------------------------------------------------- sources ------


def test_source_filters_by_name_and_label() -> None:
    tagger = Tagger(
        [
            rule("only-wires", {"any": ["invasion"]}, sources={"only": ["wires", "bbc"]}),
            rule("not-tabloids", {"any": ["invasion"]}, sources={"except": ["tabloid"]}),
            rule(
                "wires-not-tass",
                {"any": ["invasion"]},
                sources={"only": ["wires"], "except": ["tass"]},
            ),
            rule("everywhere", {"any": ["invasion"]}),
        ]
    )
    t = "Invasion feared"
    assert fired(tagger, t, source="reuters", labels=("wires",)) == [
        "everywhere",
        "not-tabloids",
        "only-wires",
        "wires-not-tass",
    ]
    assert fired(tagger, t, source="tass", labels=("wires", "state-media")) == [
        "everywhere",
        "not-tabloids",
        "only-wires",
    ]
    assert fired(tagger, t, source="bbc") == ["everywhere", "not-tabloids", "only-wires"]
    assert fired(tagger, t, source="sun", labels=("tabloid",)) == ["everywhere"]
    # no source at all (an example text, a rule test): filters do not apply
    assert len(fired(tagger, t)) == 4


def test_tag_article_applies_the_feed_name_and_labels() -> None:
    tagger = Tagger([rule("r", {"any": ["invasion"]}, sources={"only": ["wires"]})])
    wire = article("Invasion feared", source="reuters").model_copy(update={"labels": ("wires",)})
    blog = article("Invasion feared", source="blog")
    assert [m.rule_id for m in tag_article(wire, tagger).matches] == ["r"]
    assert tag_article(blog, tagger).matches == ()
