"""Server-side request forgery guard: outgoing requests reach public addresses only.

Feed URLs, the article pages they link to and the WebSub hubs they advertise are all chosen by
outsiders; without a guard, a feed could point us at ``http://169.254.169.254/`` (a cloud
metadata service), ``http://localhost:6379/`` or an intranet host. The guard works at connect
time, inside aiohttp, so it covers every way a request can end up somewhere:

* every address a host name resolves to is checked (:class:`GuardedResolver`): one bad address
  refuses the host, so a name cannot smuggle a private address in among public ones;
* the address actually connected to is checked again (the connector's socket factory): this
  covers IP-literal URLs (aiohttp does not resolve them), every redirect hop (each hop connects
  anew), and DNS rebinding (what is checked is what is connected to, not an earlier lookup);
* only ``http`` and ``https`` URLs are fetched, on the first request and on every redirect.

A feed can be trusted with private addresses (``allow_private``: an intranet feed, the test
servers on 127.0.0.1); even then link-local addresses (where cloud metadata services live),
multicast and the unspecified address stay refused. ``allowed`` networks (an operator's explicit
list) pass whatever they are, except the cloud metadata addresses, which nothing reaches.

Use :func:`guarded_session` instead of ``fetch.client_session``, or :class:`GuardedSessions`
for a process that fetches both public-only and private-allowed feeds.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.feeds.fetch import FetchLimits, session_options

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = frozenset({"http", "https"})
# allow_private -> the (guarded) session to fetch with
SessionFor = Callable[[bool], aiohttp.ClientSession]

# Cloud instance metadata services. Most live in 169.254/16 (link-local, refused anyway); these
# are listed so that no allowance (allow_private, an operator's network) ever reaches them.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
# Refused even for a feed allowed private addresses: nothing a feed could live on.
ALWAYS_REFUSED = frozenset({"cloud metadata", "link-local", "multicast", "unspecified"})

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedAddress(OSError):
    """A connection the guard will not make. An ``OSError`` so that aiohttp reports it like
    any connection failure (``ClientConnectorError``), which fetchers already handle."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)  # strerror is what aiohttp's message shows


class RefusedURL(ValueError):
    """A URL the guard will not fetch (scheme, missing host, or where it resolves to)."""


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries, if it is one of the forms that reach it:
    IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def classify(address: str | IPAddress) -> str | None:
    """Why an address is not public (``"loopback"``, ``"private"``, ...), None when it is.
    A string that is not an IP address at all is ``"not an IP address"``."""
    if isinstance(address, str):
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
        except ValueError:
            return "not an IP address"
    else:
        ip = address
    ip = _unwrap(ip)
    if ip in METADATA:
        return "cloud metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:  # RFC 1918, fc00::/7, documentation and benchmarking ranges, ...
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # 100.64/10 (carrier-grade NAT) and the like
        return "non-global"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses may be connected to."""

    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()  # allowed whatever they are (metadata excepted)

    @classmethod
    def of(
        cls, allow_private: bool = False, allowed: Iterable[str | IPNetwork] = ()
    ) -> AddressPolicy:
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in allowed))

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why the address is refused, None when it may be connected to."""
        why = classify(address)
        if why is None:
            return None
        if why in ("not an IP address", "cloud metadata"):
            return why
        ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
        if any(a.version == n.version and a in n for a in (ip, _unwrap(ip)) for n in self.allowed):
            return None
        if self.allow_private and why not in ALWAYS_REFUSED:
            return None
        return why

    def check(self, address: str | IPAddress, host: str = "") -> None:
        why = self.refusal(address)
        if why is not None:
            if host and host != str(address):
                raise RefusedAddress(
                    f"refused to connect: {host} resolves to {address}, a {why} address"
                )
            raise RefusedAddress(f"refused to connect: {address} is a {why} address")


def url_refusal(url: str) -> str | None:
    """Why a URL may not be fetched on its face (scheme, host), None when it may."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        return f"malformed URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        return f"scheme {scheme + ':' if scheme else '(none)'} is not http(s)"
    if not host:
        return "no host"
    return None


async def check_url(
    url: str,
    policy: AddressPolicy | None = None,
    resolver: AbstractResolver | None = None,
) -> None:
    """Raise :class:`RefusedURL` unless ``url`` is http(s) and its host resolves only to
    addresses the policy allows. A pre-flight check (for a config checker, or before handing a
    URL to something that does not use a guarded session); fetching through a guarded session
    checks the same things at connect time, redirects included."""
    policy = policy or AddressPolicy()
    why = url_refusal(url)
    if why is not None:
        raise RefusedURL(f"{url}: {why}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        addresses = [host]
    except ValueError:
        addresses = await _resolve_all(host, port, resolver)
    if not addresses:
        raise RefusedURL(f"{url}: {host} does not resolve")
    for address in addresses:
        why = policy.refusal(address)
        if why is not None:
            where = f"{address} is" if address == host else f"{host} resolves to {address},"
            raise RefusedURL(f"{url}: {where} a {why} address")


async def _resolve_all(host: str, port: int, resolver: AbstractResolver | None) -> list[str]:
    try:
        if resolver is not None:
            return [r["host"] for r in await resolver.resolve(host, port, socket.AF_UNSPEC)]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise RefusedURL(f"cannot resolve {host}: {exc}") from None
    return [str(info[4][0]) for info in infos]


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (aiohttp's default: the system resolver via getaddrinfo) and
    refuses the host when any of its addresses is one the policy does not allow."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        for result in results:
            self.policy.check(result["host"], host)
        return results

    async def close(self) -> None:
        await self.inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that fetches http(s) only and connects to allowed addresses only."""

    # aiohttp checks the first URL and every redirect's against this set.
    allowed_protocol_schema_set = SCHEMES

    def __init__(
        self,
        policy: AddressPolicy,
        resolver: AbstractResolver | None = None,
        limit: int = 100,
        limit_per_host: int = 0,
    ) -> None:
        self.policy = policy

        def socket_factory(addr_info: AddrInfoType) -> socket.socket:
            # the last word: the address this very connection attempt goes to
            family, type_, proto, _, sockaddr = addr_info
            policy.check(str(sockaddr[0]))
            return socket.socket(family, type_, proto)

        super().__init__(
            resolver=GuardedResolver(policy, resolver),
            socket_factory=socket_factory,
            limit=limit,
            limit_per_host=limit_per_host,
        )


def guarded_session(
    limits: FetchLimits,
    allow_private: bool = False,
    *,
    allowed: Sequence[str | IPNetwork] = (),
    resolver: AbstractResolver | None = None,
    contact_url: str = "",
) -> aiohttp.ClientSession:
    """``fetch.client_session`` with the guard: the same options (timeouts, headers,
    decompression), a guarded connector. ``resolver`` replaces the system resolver underneath
    the guard (tests map names with it)."""
    policy = AddressPolicy.of(allow_private, allowed)
    return aiohttp.ClientSession(
        connector=GuardedConnector(policy, resolver),
        trust_env=False,  # a proxy from the environment would be connected to, not the target
        **session_options(limits, contact_url),
    )


class GuardedSessions:
    """The two guarded sessions a process may need, made on first use: one for feeds limited
    to public addresses, one for feeds allowed private ones. Separate sessions, so a kept-alive
    connection to a private host can never serve a public-only feed."""

    def __init__(
        self,
        limits: FetchLimits,
        *,
        allowed: Sequence[str | IPNetwork] = (),
        resolver: AbstractResolver | None = None,
        contact_url: str = "",
    ) -> None:
        self.limits = limits
        self.allowed = tuple(allowed)
        self.resolver = resolver
        self.contact_url = contact_url
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def get(self, allow_private: bool = False) -> aiohttp.ClientSession:
        session = self._sessions.get(allow_private)
        if session is None or session.closed:
            session = guarded_session(
                self.limits,
                allow_private,
                allowed=self.allowed,
                resolver=self.resolver,
                contact_url=self.contact_url,
            )
            self._sessions[allow_private] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def __aenter__(self) -> GuardedSessions:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def is_refusal(exc: BaseException) -> bool:
    """Whether an aiohttp error (or its cause) is the guard refusing a URL or an address."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RefusedAddress | RefusedURL | aiohttp.NonHttpUrlClientError):
            return True
        if "refused to connect:" in str(current):  # happy eyeballs re-raises a combined OSError
            return True
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, BaseException) and os_error is not current and is_refusal(os_error):
            return True
        current = current.__cause__ or current.__context__
    return False
