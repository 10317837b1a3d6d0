"""Properties of text normalisation and tokenising (monitor/pipeline/text.py)."""

from __future__ import annotations

import re
import unicodedata

import Stemmer
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.pipeline.text import normalise, stemmer_for, stems, tokens, words
from tests.property.strategies import ANY_CHAR, MODEST, hostile_text

_WORD = re.compile(r"[^\W_]+")
LANGUAGES = ("en", "fr", "ru", "ar", "de", "el", "xx")  # xx: no stemmer, words unstemmed

text = st.one_of(st.text(ANY_CHAR, max_size=200), hostile_text)


@MODEST
@given(text)
@example("ΐ ẞ İ ﬃ ｉｎｖａｓｉｏｎ ͺ ﷺ")
def test_normalise_never_crashes_and_is_idempotent(value: str) -> None:
    once = normalise(value)
    assert isinstance(once, str)
    assert normalise(once) == once


@MODEST
@given(text, st.sampled_from(LANGUAGES))
@example("aͺb ͺ x", "en")  # NFKC of U+037A is " ι": a space inside one word
@example("قال النبي ﷺ اليوم", "ar")  # U+FDFA is four words once normalised
def test_token_spans_index_the_original_text(value: str, language: str) -> None:
    toks = tokens(value, language)
    stem_word = stemmer_for(language)
    # Every word of the text, in order, yields its tokens; each token's span is that word.
    expected = []
    for m in _WORD.finditer(value):
        for part in normalise(m.group()).split():
            expected.append((stem_word(part), m.start(), m.end()))
    assert [(t.stem, t.start, t.end) for t in toks] == expected
    for prev, tok in zip([None, *toks], toks, strict=False):
        assert 0 <= tok.start < tok.end <= len(value)
        assert _WORD.fullmatch(value[tok.start : tok.end])
        # in order, never overlapping: after the previous token, or a part of the same word
        if prev is not None:
            assert tok.start >= prev.end or (tok.start, tok.end) == (prev.start, prev.end)
        # The tagger joins stems with spaces and finds phrases on those boundaries: a stem
        # holding whitespace would put a phrase boundary inside a token.
        assert tok.stem and not any(ch.isspace() for ch in tok.stem)
    assert stems(value, language) == [t.stem for t in toks]


@MODEST
@given(text, text, text, st.sampled_from(LANGUAGES))
def test_a_phrase_has_the_same_stems_wherever_it_appears(
    phrase: str, before: str, after: str, language: str
) -> None:
    alone = stems(phrase, language)
    assert stems(phrase, language) == alone  # deterministic (and the caches agree)
    around = stems(f"{before} {phrase} {after}", language)
    head, tail = stems(before, language), stems(after, language)
    assert around == head + alone + tail


@MODEST
@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60))
def test_case_and_width_do_not_change_stems(phrase: str) -> None:
    wide = "".join(chr(ord(c) + 0xFEE0) for c in phrase)  # the full-width forms of ASCII
    assert stems(phrase.upper()) == stems(phrase.lower()) == stems(wide) == stems(phrase)


@MODEST
@given(st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=20))
def test_the_cached_english_stem_is_the_stemmers_own(word: str) -> None:
    # stems() caches per word and folds -arily / -ise first; a fresh Snowball stemmer agrees
    # wherever no fold applies.
    if word.endswith(("arily", "ise", "ised", "ising", "ises", "isation", "isations")):
        return
    assert stems(word) == [Stemmer.Stemmer("english").stemWord(word)]


@MODEST
@given(text)
def test_words_match_the_tokens_one_for_one(value: str) -> None:
    assert len(words(value)) == len(list(_WORD.finditer(value)))
    assert words(value, case_sensitive=True) == [
        unicodedata.normalize("NFKC", m.group()) for m in _WORD.finditer(value)
    ]
