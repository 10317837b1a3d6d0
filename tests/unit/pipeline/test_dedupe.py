from datetime import timedelta

from monitor.pipeline.dedupe import seen_before
from tests.unit.pipeline.helpers import article


def test_same_page_through_a_tracking_link_is_a_duplicate() -> None:
    seen: dict[str, str] = {}
    first = article("Storm warning", url="https://a.example/storm")
    again = article("Storm warning (updated)", url="https://A.example/storm?utm_source=rss#top")
    assert seen_before(first, seen) is None
    assert seen_before(again, seen) == first.id


def test_repeated_guid_is_a_duplicate_within_a_feed() -> None:
    seen: dict[str, str] = {}
    assert seen_before(article("One", guid="123", url="https://a.example/1"), seen) is None
    assert seen_before(article("One, again", guid="123", url="https://a.example/2"), seen)
    # an opaque guid of another feed is another article
    assert (
        seen_before(article("Two", source="other", guid="123", url="https://b.example/2"), seen)
        is None
    )


def test_identical_text_from_another_outlet_is_not_an_exact_duplicate() -> None:
    # syndication: the copy must reach the story as a new source (corroboration)
    seen: dict[str, str] = {}
    assert (
        seen_before(article("Wire story", "Body text", source="a", url="https://a.example/x"), seen)
        is None
    )
    assert (
        seen_before(article("Wire story", "Body text", source="b", url="https://b.example/y"), seen)
        is None
    )
    # ...but the same outlet republishing it under a new URL is
    assert seen_before(
        article("Wire story", "Body  text", source="a", url="https://a.example/z"), seen
    )


def test_a_later_fetch_of_the_same_article_is_a_duplicate_but_a_replay_is_not() -> None:
    seen: dict[str, str] = {}
    a = article("Hello", url="https://a.example/h")
    assert seen_before(a, seen) is None
    # Kafka redelivers the very same record after a crash: it must go through again
    assert seen_before(a, seen) is None
    # the next poll serves the article again: a duplicate
    later = a.model_copy(update={"fetched_at": a.fetched_at + timedelta(minutes=15)})
    assert seen_before(later, seen) == a.id
