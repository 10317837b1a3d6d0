"""Boilerplate removal: the host site's furniture goes, the story's own prose stays."""

from __future__ import annotations

import pytest

from monitor.feeds.parse import parse_feed
from monitor.pipeline.cleanup import strip_boilerplate
from tests.unit.feeds.helpers import FETCHED_AT, SAMPLES, source

PROSE = "Tens of thousands of Russian troops have gathered near Ukraine's border."


@pytest.mark.parametrize(
    "furniture",
    [
        "Read Also: Ferry terminal plan wins council approval after five-hour meeting",
        "READ MORE:",
        "Recent Articles",
        "Related News",
        "Top stories: Bakery opens second location",
        "Leave A Reply",
        "Please enter your comment!",
        "Please enter your name here",
        "You have entered an incorrect email address!",
        "Subscribe to our newsletter for the day's top headlines in your inbox every morning.",
        "Continue reading…",
        "Advertisement",
        "Copyright © 2022 Metro Digest. All rights reserved.",
        "The post Putin warns the West appeared first on Metro Digest.",
        "Home › World › Europe",
        "Home › World ›",
        "Home > News > World",
        "News / Europe",
        "• • •",
    ],
)
def test_furniture_lines_are_dropped(furniture: str) -> None:
    assert strip_boilerplate(f"{PROSE}\n{furniture}\n{PROSE}") == f"{PROSE}\n{PROSE}"


@pytest.mark.parametrize(
    "prose",
    [
        "Latest news from Kyiv suggests the troops are pulling back.",
        "More news is expected from the talks on Friday.",
        "US/UK talks end without agreement",
        "The 24/7 news cycle has exhausted negotiators.",
        "Kyiv/Moscow",
        "Copyright disputes between the two studios continue.",
        "Sign up for the army reserve opened on Monday.",
        # A long line that merely starts like furniture is prose.
        "Read more than 400 pages of the leaked report and one pattern emerges: "
        "every deadline slipped by a month.",
    ],
)
def test_real_prose_is_kept(prose: str) -> None:
    assert strip_boilerplate(f"{PROSE}\n{prose}") == f"{PROSE}\n{prose}"


def test_link_lists_under_a_furniture_heading_go_with_it() -> None:
    text = "\n".join(
        [
            PROSE,
            "Recent Articles",
            "Holiday light tour returns with 40 homes on the map",
            "Bridge lane closures extended into January",
            "Leave A Reply",
            "Please enter your comment!",
        ]
    )
    assert strip_boilerplate(text) == PROSE


def test_prose_after_a_furniture_heading_is_kept() -> None:
    text = f"Related stories\nBakery opens second location\n{PROSE}\nShort closing line."
    assert strip_boilerplate(text) == f"{PROSE}\nShort closing line."


def test_the_metro_digest_sample_copy_keeps_the_story_and_loses_the_furniture() -> None:
    data = (SAMPLES / "metro-digest.xml").read_bytes()
    articles = parse_feed(data, source("metro-digest"), FETCHED_AT)
    seed = next(a for a in articles if a.title.startswith("Putin warns"))
    cleaned = strip_boilerplate(seed.body)
    lines = cleaned.split("\n")
    assert lines[0].startswith("MOSCOW, Dec 14 (Global Wire)")
    assert lines[-1].endswith("said a Moscow-based defence analyst.")
    for furniture in (
        "Home ›",
        "Subscribe",
        "Recent Articles",
        "Holiday light tour",
        "Gas prices",
        "Leave A Reply",
        "enter your",
        "incorrect email",
    ):
        assert furniture not in cleaned
    # Every paragraph of the story itself survives.
    assert len(lines) == 8
