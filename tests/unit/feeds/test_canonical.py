"""Canonical URLs: one page reached through different tracking links is one URL, and two
different pages never collapse into one."""

from __future__ import annotations

import pytest

from monitor.feeds.canonical import canonical_url, url_key

PAGE = "https://news.example/world/2021/12/14/putin-warns"


@pytest.mark.parametrize(
    "tracked",
    [
        f"{PAGE}?utm_source=rss&utm_medium=feed",  # harbour-times in the samples
        f"{PAGE}?at_medium=RSS&at_campaign=KARANGA",  # capital-observer in the samples
        f"{PAGE}#comments",  # metro-digest in the samples
        f"{PAGE}?fbclid=IwAR0abc",
        f"{PAGE}?gclid=xyz&utm_campaign=winter&UTM_CONTENT=x",
        f"{PAGE}?mc_cid=1&mc_eid=2&ocid=rss",
    ],
)
def test_tracking_parameters_and_fragments_are_dropped(tracked: str) -> None:
    assert canonical_url(tracked) == PAGE


def test_parameters_that_name_the_page_are_kept_and_sorted() -> None:
    a = canonical_url("https://news.example/story?page=2&id=17&utm_source=rss")
    b = canonical_url("https://news.example/story?id=17&fbclid=q&page=2")
    assert a == b == "https://news.example/story?id=17&page=2"
    assert canonical_url("https://news.example/story?id=18") != a


def test_scheme_and_host_are_lower_cased_but_the_path_is_not() -> None:
    # Hosts are case-insensitive; paths are not (two different pages on many servers).
    assert canonical_url("HTTPS://News.EXAMPLE/World/Story") == "https://news.example/World/Story"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://news.example:443/a", "https://news.example/a"),
        ("http://news.example:80/a", "http://news.example/a"),
        ("http://news.example:8080/a", "http://news.example:8080/a"),
        ("https://news.example:80/a", "https://news.example:80/a"),
        ("https://news.example", "https://news.example/"),
    ],
)
def test_default_ports_are_dropped_and_others_kept(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_ipv6_hosts_keep_their_brackets() -> None:
    # Without brackets "https://::1/x" is not a URL any more, and "[::1]:8080" loses its port.
    assert canonical_url("https://[::1]:443/x") == "https://[::1]/x"
    assert (
        canonical_url("http://[2001:DB8::1]:8080/x?utm_source=a") == "http://[2001:db8::1]:8080/x"
    )


def test_unparseable_urls_come_back_stripped_not_raised() -> None:
    assert canonical_url("  http://news.example:99999/x \n") == "http://news.example:99999/x"
    assert canonical_url(" not a url ") == "not a url"


def test_url_key_ignores_scheme_www_and_tracking() -> None:
    assert (
        url_key("http://www.news.example/a?utm_source=x")
        == url_key("https://news.example/a#top")
        == "news.example/a"
    )
    assert url_key("https://news.example/a") != url_key("https://news.example/b")
    # www. only at the start of the host: a different site is a different key.
    assert url_key("https://awww.example/a") == "awww.example/a"
