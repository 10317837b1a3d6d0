"""Properties of the tagger (monitor/pipeline/tagging.py) on the real alert_rules: arbitrary
titles and bodies never crash it, and what a match quotes is in the text."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.pipeline.tagging import Tagger
from monitor.pipeline.text import tokens
from monitor.rules.models import Rule
from monitor.rules.ruleset import load_ruleset
from tests.conftest import RULES
from tests.property.strategies import ANY_CHAR, HOSTILE_PIECES, MODEST

RULESET = load_ruleset(RULES)
PHRASES = sorted(
    {
        str(p)
        for rule in RULESET.rules
        for p in (
            *rule.match.any,
            *rule.match.all,
            *rule.match.none,
            *(rule.match.near.terms if rule.match.near else ()),
        )
    }
)

# Text that hits rules: real phrases (in any case), hostile pieces and noise between them.
piece = st.one_of(
    st.sampled_from(PHRASES),
    st.sampled_from(PHRASES).map(str.upper),
    st.sampled_from(HOSTILE_PIECES),
    st.text(ANY_CHAR, max_size=15),
    st.sampled_from((" ", "  ", "-", "’s ", ", ", ". ", "\n\n")),
)
article_text = st.lists(piece, max_size=40).map("".join)


def _flat(text: str) -> str:
    return " ".join(text.split())


def check(tagger: Tagger, title: str, body: str, language: str = "en") -> None:
    matches = tagger.tag(title, body, language=language, source="feed", labels=("wires",))
    # Given the tokens, the same matches: the stage that tokenised once passes them in.
    toks = (tokens(title, language), tokens(body, language))
    again = tagger.tag(title, body, toks, language=language, source="feed", labels=("wires",))
    assert [(m.rule_id, m.field, m.text) for m in matches] == [
        (m.rule_id, m.field, m.text) for m in again
    ]
    for m in matches:
        text = title if m.field == "title" else body
        assert m.rule_id in tagger_ids(tagger)
        assert m.text and _flat(m.text) == m.text
        assert m.text in _flat(text)  # the words quoted are the article's own
        inner = m.snippet.removeprefix("…").removesuffix("…")
        assert inner in _flat(text) and m.text in m.snippet


def tagger_ids(tagger: Tagger) -> set[str]:
    return {r.id for r in tagger.rules}


@MODEST
@given(article_text, article_text)
@example("Putin warns of a military-technical response", "Russia will respond militarily.")
@example("aͺb ͺ invasion", "ﷺ invasion")
def test_the_real_rules_never_crash_and_quote_the_text(title: str, body: str) -> None:
    check(RULESET.tagger, title, body)


# Rules whose phrases meet the words that NFKC splits (U+FDFA is "صلى الله عليه وسلم", U+037A is
# " ι"): before the fix in text.tokens, these articles raised KeyError in Tagger._scan.
SPLIT_RULES = Tagger(
    [
        Rule.model_validate(
            {"id": "allah", "language": "ar", "match": {"any": ["الله"]}, "weight": 10}
        ),
        Rule.model_validate({"id": "iota", "match": {"any": ["ι", "ι b"]}, "weight": 10}),
        Rule.model_validate(
            {
                "id": "exact-iota",
                "exact": True,
                "match": {"any": ["ι"], "none": ["x ι"]},
                "weight": 10,
            }
        ),
    ]
)


def test_a_word_that_normalises_to_several_words_is_tagged_without_crashing() -> None:
    [m] = SPLIT_RULES.tag("قال النبي ﷺ اليوم", language="ar")
    assert (m.rule_id, m.text) == ("allah", "ﷺ")
    matches = SPLIT_RULES.tag("aͺb ͺ x", "ͺ b")
    assert {(m.rule_id, m.field, m.text) for m in matches} == {
        ("iota", "title", "ͺ"),
        ("iota", "body", "ͺ b"),
    }  # exact-iota compares the word as written, and "ͺ" normalised is " ι", not "ι"


@MODEST
@given(
    st.lists(
        st.one_of(st.sampled_from(("ﷺ", "ͺ", "ι", "الله", " ", "b", "x", "ﷻ")), piece), max_size=20
    ).map("".join),
    st.sampled_from(("en", "ar", "el")),
)
def test_split_words_never_crash_the_tagger(text: str, language: str) -> None:
    check(SPLIT_RULES, text, text, language)
