"""Which address a request came from: the socket's peer, or what trusted proxies say it was.

Per-client limits are keyed by this address, so whoever can choose it can dodge them or spend
someone else's allowance. Only the proxies named in CRM_TRUSTED_PROXIES are believed, and of
the chain they report only the right-most address that is not itself a trusted proxy: every
address to its left was written by the client (or a proxy we do not know) and proves nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache

from crm.settings import Settings, parse_networks

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Entries read from the right of a chain: enough for any real proxy chain, and it bounds the
# work a long header can cause (only the last few entries are ever split off and parsed).
MAX_HOPS = 16

# A `for=` parameter of RFC 7239: a token or a quoted string (which may hold "[v6]:port").
_FORWARDED_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`), or None."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Resolves the client address of a request from its peer and forwarding headers.

    Built once at start-up; with no trusted proxies (the default) `resolve` returns the peer
    without looking at a header.
    """

    def __init__(self, networks: Iterable[Network], header: str = "x-forwarded-for") -> None:
        self.networks = tuple(networks)
        self.header = header.lower().encode("latin-1")
        self._forwarded = self.header == b"forwarded"
        # Peers and hops repeat (the proxies themselves, and each client on every request), and
        # parsing an address costs several microseconds, so verdicts are remembered (bounded:
        # a client writing random hops only evicts).
        self.is_trusted = lru_cache(maxsize=4096)(self._is_trusted)
        self._hop = lru_cache(maxsize=16384)(self._read_hop)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustedProxies:
        return cls(parse_networks(settings.trusted_proxies), settings.trusted_proxy_header)

    @property
    def enabled(self) -> bool:
        return bool(self.networks)

    def _is_trusted(self, text: str) -> bool:
        address = parse_address(text)
        return address is not None and self._contains(address)

    def _contains(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def resolve(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The client's address: `peer` itself unless it is a trusted proxy."""
        if not self.networks or not self.is_trusted(peer):
            return peer
        values = [value for name, value in headers if name == self.header]
        if not values:
            return peer
        try:
            joined = b",".join(values).decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            return peer
        entries = joined.rsplit(",", MAX_HOPS)[-MAX_HOPS:]
        client = peer
        # Right to left: each entry was written by the hop to its right, which we trust so far.
        for entry in reversed(entries):
            hop = self._hop(entry)
            if hop is None:
                # A trusted hop reported something we cannot use ("unknown", a socket path,
                # garbage): the nearest address we can vouch for stands for the client.
                return client
            client, trusted = hop
            if not trusted:
                return client
        return client

    def _read_hop(self, entry: str) -> tuple[str, bool] | None:
        """One entry of the chain: (the address in canonical form, whether it is a proxy)."""
        address = self._forwarded_for(entry) if self._forwarded else parse_address(entry)
        if address is None:
            return None
        return str(address), self._contains(address)

    @staticmethod
    def _forwarded_for(element: str) -> Address | None:
        match = _FORWARDED_FOR.search(element)
        if match is None:
            return None
        value = match.group(1)
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"')
        return parse_address(value)
