"""Properties of URL canonicalisation (monitor/feeds/canonical.py)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.feeds.canonical import canonical_url, url_key
from tests.property.strategies import ANY_CHAR, MODEST, hostile_text

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
label = st.text(_ALNUM + "-", min_size=1, max_size=10)
host = st.one_of(
    st.lists(label, min_size=1, max_size=4).map(".".join),
    st.sampled_from(
        ("[::1]", "[2001:DB8::1]", "127.0.0.1", "xn--bcher-kva.example", "Bücher.example")
    ),
)
scheme = st.sampled_from(("http", "https", "HTTP", "Https", "ftp", "FEED", "mailto", "data", ""))
port = st.one_of(
    st.none(), st.integers(0, 65535).map(str), st.sampled_from(("", "80", "443", "99999", "x"))
)
url_char = st.one_of(
    st.sampled_from(list(_ALNUM + "-._~!$&'()*+,;=:@/?#%[] ")),
    st.sampled_from(("%20", "%2F", "%3D", "%26", "%zz", "+", "é", "\t", "\n", "\x00", "\u202e")),
    ANY_CHAR,
)
part = st.lists(url_char, max_size=15).map("".join)
userinfo = st.text(_ALNUM + "-._~!$&'()*+,;=:%", max_size=10)
param = st.tuples(
    st.one_of(
        st.sampled_from(
            ("utm_source", "UTM_Medium", "fbclid", "gclid", "id", "page", "q", "ref_src", "a", "")
        ),
        part,
    ),
    part,
)


@st.composite
def urls(draw: st.DrawFn, web: bool = False) -> str:
    """URL-shaped text; ``web``: an http(s) URL that parses (its port in range)."""
    if web:
        s = draw(st.sampled_from(("http", "https", "HTTP", "hTTps")))
        p = draw(st.one_of(st.none(), st.integers(0, 65535).map(str), st.just("")))
    else:
        s, p = draw(scheme), draw(port)
    h = draw(host)
    netloc = h if p is None else f"{h}:{p}"
    if draw(st.booleans()):
        netloc = f"{draw(userinfo)}@{netloc}"
    path = draw(part)
    query = "&".join(
        f"{k}={v}" if draw(st.booleans()) else k for k, v in draw(st.lists(param, max_size=5))
    )
    fragment = draw(part)
    url = f"{s}://{netloc}/{path}" if s else f"//{netloc}/{path}"
    if query or draw(st.booleans()):
        url += f"?{query}"
    if fragment:
        url += f"#{fragment}"
    return (
        draw(st.sampled_from(("", " ", "\t", "\n"))) + url + draw(st.sampled_from(("", " ", "\n")))
    )


anything = st.one_of(urls(), hostile_text, st.text(ANY_CHAR, max_size=100))


@MODEST
@given(anything)
@example("http://[::1")  # unbalanced bracket: urlsplit raises
@example("http://example.com:99999/")  # port out of range
@example("HTTP://WWW.Example.COM:80/a?utm_source=x&b=2&a=1#frag")
def test_never_crashes_and_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert isinstance(once, str)
    assert canonical_url(once) == once
    assert url_key(once) == url_key(url)
    assert isinstance(url_key(url), str)


@MODEST
@given(urls(web=True))
def test_scheme_and_host_case_do_not_matter(url: str) -> None:
    # http(s) only: other schemes keep their netloc as written, and a URL that does not parse
    # (a port out of range) is only stripped; neither is a page the pipeline fetches.
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    upper = f"{scheme.upper()}://{userinfo}{at}{hostport.upper()}{slash}{tail}"
    lower = f"{scheme.lower()}://{userinfo}{at}{hostport.lower()}{slash}{tail}"
    assert canonical_url(upper) == canonical_url(lower)
    assert url_key(upper) == url_key(lower)


@MODEST
@given(urls(web=True))
def test_http_urls_lose_fragment_tracking_and_default_port(url: str) -> None:
    canon = canonical_url(url)
    assert canon.startswith(("http://", "https://"))
    assert "#" not in canon
    query = canon.partition("?")[2]
    keys = [kv.partition("=")[0].lower() for kv in query.split("&") if kv]
    assert not [k for k in keys if k.startswith("utm_") or k in {"fbclid", "gclid", "ref_src"}]
    netloc = canon.split("://", 1)[1].partition("/")[0]
    assert not netloc.endswith((":80", ":443")) or netloc.endswith(
        ":443" if canon.startswith("http://") else ":80"
    )
    assert netloc == netloc.lower()
