"""Canonical article URLs: the same page reached through different tracking links is one URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Parameters that say how a reader arrived, never which page it is.
_TRACKING_PREFIXES = ("utm_", "at_", "ns_", "mc_", "pk_", "hsa_", "_hs", "itm_", "oly_")
_TRACKING = {
    "fbclid",
    "gclid",
    "dclid",
    "gclsrc",
    "yclid",
    "msclkid",
    "igshid",
    "twclid",
    "_ga",
    "_gl",
    "ocid",
    "cmpid",
    "cmp",
    "icid",
    "ito",
    "s_cid",
    "sr_share",
    "ref_src",
    "ref_url",
    "rss",
    "rssfeed",
    "smid",
    "wt.mc_id",
    "__twitter_impression",
    "mkt_tok",
    "spm",
    "xtor",
    "ncid",
    "taid",
    "utm",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, default port, fragment and tracking parameters dropped;
    remaining query parameters sorted. Anything that does not parse is returned stripped."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:  # an IPv6 literal keeps its brackets, or the port could not be told apart
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _TRACKING and not k.lower().startswith(_TRACKING_PREFIXES)
    ]
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(sorted(query)), ""))


def url_key(url: str) -> str:
    """The dedupe key of a URL: its canonical form without scheme and ``www.``."""
    canon = canonical_url(url)
    rest = canon.split("://", 1)[-1]
    return rest.removeprefix("www.")
