"""The address guard: which addresses are public, and a guarded session refusing loopback,
private and metadata addresses at connect time — IP literals, names resolving to them (any of
their addresses), and redirects to them — and every scheme but http(s)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping, Sequence

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.errors import FetchError
from monitor.feeds.fetch import FetchLimits, Validators, fetch
from monitor.feeds.netguard import (
    AddressPolicy,
    GuardedSessions,
    RefusedAddress,
    RefusedURL,
    check_url,
    classify,
    guarded_session,
    is_refusal,
    url_refusal,
)
from tests.conftest import unavailable
from tests.unit.feeds.helpers import FeedServer, rss

LIMITS = FetchLimits(total_timeout=3.0, connect_timeout=1.0, read_timeout=1.0, max_bytes=64_000)


class MapResolver(AbstractResolver):
    """DNS for tests: each name maps to the addresses given; unknown names do not resolve."""

    def __init__(self, names: Mapping[str, Sequence[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"no such host {host}")
        out: list[ResolveResult] = []
        for address in self.names[host]:
            v6 = ipaddress.ip_address(address).version == 6
            out.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": socket.AF_INET6 if v6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return out

    async def close(self) -> None:
        pass


async def ok(request: web.Request) -> web.StreamResponse:
    return web.Response(text="hello")


# --- which addresses are public -----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "non-global"),
        # IPv6 forms that carry an IPv4 address are judged by that address
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("not-an-ip", "not an IP address"),
    ],
)
def test_addresses_that_are_not_public(address: str, why: str) -> None:
    assert classify(address) == why


@pytest.mark.parametrize("address", ["240.0.0.1", "255.255.255.255", "192.0.2.1", "2001:db8::1"])
def test_reserved_and_documentation_ranges_are_not_public(address: str) -> None:
    assert classify(address) is not None


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses(address: str) -> None:
    assert classify(address) is None
    assert AddressPolicy().refusal(address) is None


def test_allow_private_opens_loopback_and_private_but_never_metadata_link_local_multicast() -> None:
    policy = AddressPolicy(allow_private=True)
    for address in ("127.0.0.1", "::1", "10.0.0.1", "192.168.0.10", "fd00::5", "100.64.0.1"):
        assert policy.refusal(address) is None, address
    for address in ("169.254.169.254", "100.100.100.200", "fe80::1", "224.0.0.1", "0.0.0.0"):
        assert policy.refusal(address) is not None, address
    assert AddressPolicy().refusal("127.0.0.1") == "loopback"


def test_allowed_networks_pass_whatever_they_are() -> None:
    policy = AddressPolicy.of(allowed=["10.20.0.0/16", "127.0.0.2/32"])
    assert policy.refusal("10.20.3.4") is None
    assert policy.refusal("::ffff:10.20.3.4") is None
    assert policy.refusal("127.0.0.2") is None
    assert policy.refusal("10.21.0.1") == "private"
    assert policy.refusal("127.0.0.1") == "loopback"
    # nothing opens the metadata services
    assert AddressPolicy.of(True, ["169.254.0.0/16"]).refusal("169.254.169.254") == "cloud metadata"
    assert AddressPolicy.of(True, ["169.254.0.0/16"]).refusal("169.254.1.1") is None


def test_check_raises_an_os_error_naming_host_address_and_reason() -> None:
    with pytest.raises(
        RefusedAddress, match=r"intranet\.example resolves to 10\.0\.0\.7, a private"
    ):
        AddressPolicy().check("10.0.0.7", "intranet.example")
    assert issubclass(RefusedAddress, OSError)


# --- URLs on their face -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://ftp.example/pub/feed.xml",
        "gopher://gopher.example:70/",
        "javascript:alert(1)",
        "data:text/html,<p>hi</p>",
        "dict://127.0.0.1:11211/stat",
        "//news.example/rss",
        "news.example/rss",
        "http://",
        "http://news.example:notaport/",
    ],
)
def test_only_http_and_https_urls_with_a_host(url: str) -> None:
    assert url_refusal(url) is not None


@pytest.mark.parametrize("url", ["http://news.example/rss", "HTTPS://News.Example:8443/a?b=c"])
def test_http_and_https_urls_pass(url: str) -> None:
    assert url_refusal(url) is None


async def test_check_url_resolves_and_checks_every_address() -> None:
    dns = MapResolver(
        {
            "news.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
            "split.example": ["93.184.216.34", "10.0.0.5"],  # one bad address is enough
            "meta.example": ["169.254.169.254"],
        }
    )
    await check_url("https://news.example/rss", resolver=dns)
    with pytest.raises(RefusedURL, match=r"split\.example resolves to 10\.0\.0\.5, a private"):
        await check_url("https://split.example/rss", resolver=dns)
    with pytest.raises(RefusedURL, match="cloud metadata"):
        await check_url("http://meta.example/latest/meta-data/", AddressPolicy(True), dns)
    with pytest.raises(RefusedURL, match=r"127\.0\.0\.1 is a loopback"):
        await check_url("http://127.0.0.1:8080/", resolver=dns)
    await check_url("http://127.0.0.1:8080/", AddressPolicy(allow_private=True), dns)
    with pytest.raises(RefusedURL, match="scheme file: is not http"):
        await check_url("file:///etc/passwd")
    with pytest.raises(RefusedURL, match="cannot resolve"):
        await check_url("http://nowhere.example/", resolver=dns)


async def test_check_url_uses_the_system_resolver_by_default() -> None:
    with pytest.raises(RefusedURL, match="loopback"):
        await check_url("http://localhost/")


# --- a guarded session, over real sockets ------------------------------------------------


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


async def test_loopback_is_refused_by_default_and_allowed_with_allow_private(
    server: FeedServer,
) -> None:
    server.handlers["/a"] = ok
    async with guarded_session(LIMITS) as session:
        with pytest.raises(
            aiohttp.ClientConnectorError, match=r"127\.0\.0\.1 is a loopback"
        ) as info:
            await get(session, server.url("/a"))
        assert is_refusal(info.value)
    assert server.seen("/a") == []  # not even a connection
    async with guarded_session(LIMITS, allow_private=True) as session:
        assert await get(session, server.url("/a")) == (200, "hello")


async def test_a_public_looking_name_resolving_to_a_private_address_is_refused(
    server: FeedServer,
) -> None:
    port = server.url("").rsplit(":", 1)[1]
    dns = MapResolver(
        {
            "intranet.example": ["10.0.0.7"],
            "rebound.example": ["127.0.0.1"],
            "split.example": ["93.184.216.34", "127.0.0.1"],
        }
    )
    async with guarded_session(LIMITS, resolver=dns) as session:
        for name, why in [
            ("intranet.example", "10.0.0.7, a private"),
            ("rebound.example", "127.0.0.1, a loopback"),
            ("split.example", "127.0.0.1, a loopback"),
        ]:
            with pytest.raises(aiohttp.ClientConnectorDNSError, match=why) as info:
                await get(session, f"http://{name}:{port}/a")
            assert is_refusal(info.value)
    assert server.requests == []
    # the same names work for a feed allowed private addresses (so the resolver is the one used)
    server.handlers["/a"] = ok
    async with guarded_session(LIMITS, allow_private=True, resolver=dns) as session:
        assert await get(session, f"http://rebound.example:{port}/a") == (200, "hello")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/1"])
async def test_non_http_schemes_are_refused(url: str) -> None:
    async with guarded_session(LIMITS, allow_private=True) as session:
        with pytest.raises(aiohttp.NonHttpUrlClientError) as info:
            await get(session, url)
        assert is_refusal(info.value)


@pytest.fixture
async def other_host() -> AsyncIterator[FeedServer]:
    """A second server, on 127.0.0.2: a test allows that one address and nothing else."""
    srv = FeedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    try:
        await site.start()
    except OSError as exc:  # pragma: no cover - a system without the whole 127/8 on loopback
        await runner.cleanup()
        unavailable(f"cannot bind 127.0.0.2: {exc}")
    host, port = runner.addresses[0][:2]
    srv.base = f"http://{host}:{port}"
    try:
        yield srv
    finally:
        await runner.cleanup()


async def test_a_redirect_to_a_refused_address_is_refused(
    server: FeedServer, other_host: FeedServer
) -> None:
    """The allowed server (127.0.0.2) redirects to 127.0.0.1, which is not allowed: every hop
    is checked, not only the URL asked for."""
    secret = server.url("/secret")
    server.handlers["/secret"] = ok

    async def to_secret(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(secret)

    async def to_metadata(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://metadata.example/latest/meta-data/iam/")

    async def to_file(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("file:///etc/passwd")

    other_host.handlers.update({"/a": ok, "/r": to_secret, "/m": to_metadata, "/f": to_file})
    dns = MapResolver({"metadata.example": ["169.254.169.254"]})
    async with guarded_session(LIMITS, allowed=["127.0.0.2/32"], resolver=dns) as session:
        assert await get(session, other_host.url("/a")) == (200, "hello")
        with pytest.raises(aiohttp.ClientConnectorError, match=r"127\.0\.0\.1 is a loopback"):
            await get(session, other_host.url("/r"))
        with pytest.raises(aiohttp.ClientConnectorDNSError, match="cloud metadata"):
            await get(session, other_host.url("/m"))
        with pytest.raises(aiohttp.NonHttpUrlRedirectClientError) as info:
            await get(session, other_host.url("/f"))
        assert is_refusal(info.value)
    assert server.seen("/secret") == []
    assert [r.path for r in other_host.requests] == ["/a", "/r", "/m", "/f"]


async def test_the_feed_fetcher_reports_a_refusal_as_a_fetch_error(server: FeedServer) -> None:
    async def feed(request: web.Request) -> web.StreamResponse:
        return web.Response(body=rss("<title>t</title>"), content_type="application/rss+xml")

    server.handlers["/rss"] = feed
    async with guarded_session(LIMITS) as session:
        with pytest.raises(FetchError, match="loopback"):
            await fetch(session, "wire", server.url("/rss"), Validators(), LIMITS)
    async with guarded_session(LIMITS, allow_private=True) as session:
        got = await fetch(session, "wire", server.url("/rss"), Validators(), LIMITS)
        assert got.status == 200 and b"<rss" in got.body
        [request] = server.seen("/rss")
        assert "news-monitor" in request.headers["User-Agent"]  # the fetcher's headers


async def test_guarded_sessions_keep_public_and_private_apart(server: FeedServer) -> None:
    server.handlers["/a"] = ok
    async with GuardedSessions(LIMITS) as sessions:
        public, private = sessions.get(False), sessions.get(True)
        assert public is not private
        assert sessions.get(False) is public and sessions.get(True) is private
        assert await get(private, server.url("/a")) == (200, "hello")
        with pytest.raises(aiohttp.ClientConnectorError, match="loopback"):
            await get(public, server.url("/a"))
    assert public.closed and private.closed
