"""Outgoing connections to tenant providers: resolve once, refuse internal addresses, connect there.

Checking a host name and then letting the HTTP or SMTP client resolve it again leaves a window
(DNS rebinding): a name can answer a public address to the check and 127.0.0.1 or the cloud
metadata address to the connection a moment later. So the check and the connection share one
resolution: every address the name resolves to is checked, and the socket is opened to one of
those very addresses. TLS still verifies the certificate against the original name (SNI and the
HTTP Host header carry the name, only the TCP connection targets the checked address).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from crm.messaging.errors import ProviderHostUnresolvable, ProviderUrlNotAllowed
from crm.messaging.providers.base import PermanentDeliveryError, TransientDeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# 100.64.0.0/10 (carrier-grade NAT) is not "private" to ipaddress but is internal.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def is_internal(address: IPAddress) -> bool:
    """True for addresses a tenant must not make the server connect to."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address and reach it: mapped and 6to4. Judge the IPv4
        # inside (2002:a9fe:a9fe:: is the cloud metadata address through a 6to4 relay).
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            address = embedded
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT)
    )


async def _getaddrinfo(name: str, port: int | None) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# The resolver, as a module attribute so tests can stand in a name server that changes answers.
lookup = _getaddrinfo


async def resolve_public(host: str, port: int | None = None) -> list[str]:
    """The addresses `host` resolves to, once, all of them public; raise otherwise.

    One internal answer is enough to refuse: a name that mixes public and internal addresses
    would otherwise reach the internal one whenever the public one is slow.
    """
    name = host.strip("[]")
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(name)]
    except ValueError:
        try:
            found = await lookup(name, port)
        except (OSError, UnicodeError):
            raise ProviderHostUnresolvable(
                details=[{"field": "config", "message": "the host name does not resolve"}]
            ) from None
        addresses = []
        for text in found:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses or any(is_internal(a) for a in addresses):
        raise ProviderUrlNotAllowed(
            details=[{"field": "config", "message": "the host is not a public internet address"}]
        )
    return [str(a) for a in addresses]


class AddressNotAllowed(PermanentDeliveryError):
    """The provider's host is, or now resolves to, an internal address: nothing was sent."""


class HostUnresolvable(TransientDeliveryError):
    """The provider's host did not resolve (DNS may recover): nothing was sent."""


async def _checked_addresses(host: str, port: int | None) -> list[str]:
    try:
        return await resolve_public(host, port)
    except ProviderUrlNotAllowed:
        raise AddressNotAllowed("the provider address is not a public internet address") from None
    except ProviderHostUnresolvable:
        raise HostUnresolvable("the provider host name does not resolve") from None


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but every TCP connection goes to an address checked by
    `resolve_public` in the same call. httpcore passes the URL's host here and keeps using it for
    SNI and certificate checks, so only the destination of the socket changes."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface names it)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _checked_addresses(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface names it)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed("unix sockets are not provider addresses")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(limits: httpx.Limits) -> httpx.AsyncClient:
    """An HTTP client for tenant providers: connections only to checked public addresses, no
    proxies from the environment (a proxy would resolve the name again), no redirects."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    # httpx builds its connection pool without a way to pass a network backend; the pool is
    # rebuilt with the same settings and the guarded backend.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedNetworkBackend(),
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)


async def connect_public(host: str, port: int, limit_seconds: float) -> socket.socket:
    """A connected, non-blocking TCP socket to a checked address of `host` (for SMTP, whose
    client then speaks TLS to the original name over it)."""
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for address in await _checked_addresses(host, port):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(limit_seconds):
                await loop.sock_connect(sock, (address, port))
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            last = exc if isinstance(exc, OSError) else OSError("connect timed out")
    assert last is not None
    raise last
