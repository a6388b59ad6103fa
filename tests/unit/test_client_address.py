"""The client address: only configured proxies are believed, and only the right-most untrusted hop."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crm.api.clientaddress import MAX_HOPS, TrustedProxies, parse_address
from crm.settings import Settings, parse_networks

PROXY = "10.0.0.5"


def proxies(raw: str = "10.0.0.0/8, 192.0.2.7", header: str = "x-forwarded-for") -> TrustedProxies:
    return TrustedProxies(parse_networks(raw), header)


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", v.encode("latin-1")) for v in values]


def forwarded(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"forwarded", v.encode("latin-1")) for v in values]


def test_without_trusted_proxies_no_header_is_believed() -> None:
    resolver = TrustedProxies(())
    assert not resolver.enabled
    assert resolver.resolve("127.0.0.1", xff("203.0.113.9")) == "127.0.0.1"


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    assert proxies().resolve("198.51.100.1", xff("203.0.113.9")) == "198.51.100.1"
    assert proxies().resolve("198.51.100.1", xff("10.0.0.1")) == "198.51.100.1"


def test_trusted_chain_picks_the_right_most_untrusted_address() -> None:
    # The client wrote "1.1.1.1" itself; 203.0.113.9 is what our first proxy saw connecting.
    headers = xff("1.1.1.1, 203.0.113.9, 10.1.2.3")
    assert proxies().resolve(PROXY, headers) == "203.0.113.9"


def test_several_headers_are_one_chain_in_order() -> None:
    headers = xff("1.1.1.1", "203.0.113.9, 192.0.2.7")
    assert proxies().resolve(PROXY, headers) == "203.0.113.9"


def test_a_chain_of_only_proxies_gives_the_left_most() -> None:
    assert proxies().resolve(PROXY, xff("10.9.9.9, 10.1.1.1")) == "10.9.9.9"


def test_trusted_peer_without_header_is_the_client() -> None:
    assert proxies().resolve(PROXY, []) == PROXY
    assert proxies().resolve(PROXY, [(b"x-real-ip", b"203.0.113.9")]) == PROXY


@pytest.mark.parametrize(
    "value",
    ["", "unknown", "not an address", "203.0.113.9, garbage", "[::1", "1.2.3.4.5", ",,,"],
)
def test_malformed_hop_falls_back_to_the_nearest_trusted_address(value: str) -> None:
    # Whatever a trusted hop could not give is not guessed: the hop itself stands for the client.
    assert proxies().resolve(PROXY, xff(value)) == PROXY


def test_malformed_entry_left_of_an_untrusted_one_is_never_read() -> None:
    assert proxies().resolve(PROXY, xff("garbage, 203.0.113.9")) == "203.0.113.9"


def test_ports_brackets_and_mapped_addresses_are_understood() -> None:
    assert proxies().resolve(PROXY, xff("203.0.113.9:4711")) == "203.0.113.9"
    assert proxies().resolve(PROXY, xff("[2001:db8::17]:4711")) == "2001:db8::17"
    assert proxies().resolve(PROXY, xff("2001:db8::17")) == "2001:db8::17"
    assert proxies().resolve("::ffff:10.0.0.5", xff("203.0.113.9")) == "203.0.113.9"
    assert parse_address("::ffff:10.0.0.5") == parse_address("10.0.0.5")


def test_a_long_header_is_read_only_from_its_right_end() -> None:
    chain = ", ".join(["10.0.0.1"] * 10_000 + ["203.0.113.9"] + ["10.0.0.2"] * 3)
    assert proxies().resolve(PROXY, xff(chain)) == "203.0.113.9"
    # More trusted hops than are read: the last one read stands for the client.
    only_proxies = ", ".join(f"10.0.{i // 250}.{i % 250}" for i in range(MAX_HOPS * 4))
    assert proxies().resolve(PROXY, xff("203.0.113.9, " + only_proxies)).startswith("10.0.")


def test_forwarded_header_rfc_7239() -> None:
    resolver = proxies(header="forwarded")
    headers = forwarded(
        'for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https, for=10.1.1.1;by=10.0.0.5'
    )
    assert resolver.resolve(PROXY, headers) == "2001:db8:cafe::17"
    assert resolver.resolve(PROXY, forwarded("For=203.0.113.9")) == "203.0.113.9"
    assert resolver.resolve(PROXY, forwarded("for=unknown")) == PROXY
    assert resolver.resolve(PROXY, forwarded("for=_hidden, for=10.1.1.1")) == "10.1.1.1"
    assert resolver.resolve(PROXY, forwarded("proto=https")) == PROXY
    assert resolver.resolve(PROXY, forwarded('for="1.1.1.1, for=203.0.113.9')) == "203.0.113.9"


def test_only_the_configured_header_is_read() -> None:
    # A proxy that appends to X-Forwarded-For passes a client's own Forwarded header through.
    spoofed = xff("203.0.113.9") + forwarded("for=1.1.1.1")
    assert proxies().resolve(PROXY, spoofed) == "203.0.113.9"
    assert proxies(header="forwarded").resolve(PROXY, xff("1.1.1.1")) == PROXY


def test_bad_trusted_proxy_setting_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="CRM_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8, nginx", _env_file=None)  # type: ignore[call-arg]
    assert Settings(trusted_proxies=" 10.0.0.0/8 ,::1,", _env_file=None).trusted_proxies  # type: ignore[call-arg]
