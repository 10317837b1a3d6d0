from __future__ import annotations

from datetime import timedelta

from monitor.models import Story
from monitor.pipeline.cluster import Signed, StoryIndex, assign
from monitor.pipeline.ingest import tag_article
from monitor.rules.ruleset import RuleSet
from tests.unit.pipeline.helpers import article

WIRE = (
    "President Vladimir Putin warned on Tuesday that Russia is prepared to respond with military "
    "and technical measures to what he called unfriendly actions by the West, as tensions rise "
    "over the conflict in Ukraine. Speaking at a meeting of the defence ministry board, he said "
    "the reinforcement of NATO forces on Russia's borders was a serious source of concern and "
    "called for serious negotiations on security guarantees. Western governments accuse Moscow "
    "of massing tens of thousands of troops near the border in preparation for an offensive."
)
OTHER = (
    "The central bank raised its main interest rate by a quarter point on Thursday, citing "
    "persistent price pressures in energy and food, and signalled that further increases were "
    "likely next year if wage growth remained strong across the services sector."
)


def fresh() -> tuple[StoryIndex, dict[str, Signed], dict[str, Story]]:
    sigs: dict[str, Signed] = {}
    stories: dict[str, Story] = {}
    return StoryIndex(sigs, stories), sigs, stories


def test_syndicated_copies_become_one_story(ruleset: RuleSet) -> None:
    index, _, _ = fresh()
    title = "Putin warns Russia will respond militarily and technically to the West"
    copies = [
        article(title, WIRE, source="wire"),
        article(
            "Putin says Russia will respond 'militarily and technically'",
            "Home › World\n"
            + WIRE.replace("on Tuesday", "on Tuesday, 14 December")
            + "\nRead Also: Cats\nLeave A Reply",
            source="herald",
            minutes=90,
        ),
        article(title, WIRE.split(". Western")[0] + ".", source="digest", minutes=200),
    ]
    events = [assign(tag_article(a, ruleset.tagger), index) for a in copies]
    assert [e.new_story for e in events] == [True, False, False]
    assert len({e.story.id for e in events}) == 1
    assert events[-1].story.sources == ("wire", "herald", "digest")
    assert events[-1].story.articles == 3


def test_different_stories_stay_apart(ruleset: RuleSet) -> None:
    index, _, _ = fresh()
    a = assign(tag_article(article("Putin warns the West", WIRE), ruleset.tagger), index)
    b = assign(
        tag_article(article("Central bank raises rates", OTHER, source="b"), ruleset.tagger), index
    )
    assert a.story.id != b.story.id and b.new_story


def test_story_survives_a_restart_through_its_tables(ruleset: RuleSet) -> None:
    index, sigs, stories = fresh()
    first = assign(tag_article(article("Putin warns the West", WIRE), ruleset.tagger), index)
    rebuilt = StoryIndex(dict(sigs), dict(stories))  # the LSH is rebuilt from the tables
    copy = assign(
        tag_article(article("Putin warns the West", WIRE, source="c2"), ruleset.tagger), rebuilt
    )
    assert copy.story.id == first.story.id and not copy.new_story


def test_quiet_story_closes_after_the_window(ruleset: RuleSet) -> None:
    index, sigs, stories = fresh()
    first = assign(tag_article(article("Putin warns the West", WIRE), ruleset.tagger), index)
    late = article(
        "Putin warns the West",
        WIRE,
        source="late",
        minutes=(index.window + timedelta(hours=1)).total_seconds() / 60,
    )
    event = assign(tag_article(late, ruleset.tagger), index)
    assert event.new_story and event.story.id != first.story.id
    assert index.prune(late.published) == 1
    assert first.story.id not in stories and all(
        s.story_id != first.story.id for s in sigs.values()
    )


def test_story_evidence_merges_per_rule(ruleset: RuleSet) -> None:
    index, _, _ = fresh()
    body_only = article("Kremlin statement", WIRE)
    headline = article("Putin vows military and technical measures", WIRE, source="b", minutes=5)
    assign(tag_article(body_only, ruleset.tagger), index)
    event = assign(tag_article(headline, ruleset.tagger), index)
    hit = {h.rule_id: h for h in event.story.hits}["military-technical-response"]
    assert hit.in_title and hit.articles == 2


def test_a_redelivered_article_changes_nothing(ruleset: RuleSet) -> None:
    index, _, stories = fresh()
    tagged = tag_article(article("Putin warns the West", WIRE), ruleset.tagger)
    first = assign(tagged, index)
    copy = assign(
        tag_article(article("Putin warns the West", WIRE, source="b"), ruleset.tagger), index
    )
    again = assign(tagged, index)
    assert again.replayed and not again.new_story and again.story.id == first.story.id
    assert stories[first.story.id].articles == 2 == copy.story.articles
