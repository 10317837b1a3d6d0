from monitor.pipeline.text import stems, tokens


def test_adverb_meets_adjective() -> None:
    assert stems("militarily and technically") == stems("military and technical")


def test_british_and_american_spellings_meet() -> None:
    assert stems("mobilisation") == stems("mobilization")
    assert stems("mobilised") == stems("mobilized")


def test_hyphens_and_punctuation_split_words() -> None:
    assert stems("military-technical") == stems("military technical")
    assert stems("“militarily,”") == stems("militarily")


def test_case_and_width_are_folded() -> None:
    assert stems("INVASION") == stems("invasion") == stems("ｉｎｖａｓｉｏｎ")


def test_token_spans_point_into_the_original_text() -> None:
    text = "Putin’s “military-technical” measures"
    for tok in tokens(text):
        assert text[tok.start : tok.end].isalnum()
    assert [text[t.start : t.end] for t in tokens(text)] == [
        "Putin",
        "s",
        "military",
        "technical",
        "measures",
    ]


def test_nouns_ending_in_ily_keep_meeting_their_plurals() -> None:
    assert stems("family") == stems("families")
    assert stems("necessarily") == stems("necessary")
