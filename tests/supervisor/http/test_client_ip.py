"""Client address from the socket peer and X-Forwarded-For, trusting only configured proxies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.supervisor.http.client_address import (
    ClientIPResolver,
    is_private_address,
    parse_address,
    parse_networks,
)

DEFAULT = ClientIPResolver()


def test_no_header_gives_the_peer() -> None:
    assert DEFAULT.resolve("203.0.113.5", None) == "203.0.113.5"
    assert DEFAULT.resolve("127.0.0.1", None) == "127.0.0.1"
    assert DEFAULT.resolve("127.0.0.1", "") == "127.0.0.1"


def test_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    assert DEFAULT.resolve("198.51.100.20", "1.2.3.4") == "198.51.100.20"
    assert DEFAULT.resolve("198.51.100.20", ["1.2.3.4", "127.0.0.1"]) == "198.51.100.20"


def test_header_from_a_trusted_proxy_is_honoured() -> None:
    assert DEFAULT.resolve("127.0.0.1", "81.2.69.160") == "81.2.69.160"
    assert DEFAULT.resolve("::1", "2a02:cf40::7") == "2a02:cf40::7"


def test_entries_left_of_the_proxys_own_are_client_supplied_and_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; Caddy appended the real peer.
    assert DEFAULT.resolve("127.0.0.1", "1.1.1.1, 81.2.69.160") == "81.2.69.160"


def test_trusted_hops_are_skipped_right_to_left() -> None:
    resolver = ClientIPResolver(["127.0.0.1", "10.0.0.0/8"])
    header = "6.6.6.6, 81.2.69.160, 10.0.0.7, 10.0.0.2"
    assert resolver.resolve("127.0.0.1", header) == "81.2.69.160"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    resolver = ClientIPResolver(["127.0.0.1", "10.0.0.0/8"])
    assert resolver.resolve("127.0.0.1", "10.1.1.1, 10.0.0.2") == "10.1.1.1"


def test_repeated_headers_are_one_list_in_order() -> None:
    assert DEFAULT.resolve("127.0.0.1", ["6.6.6.6", "81.2.69.160"]) == "81.2.69.160"


def test_garbage_entry_stops_the_walk_at_the_last_vouched_address() -> None:
    assert DEFAULT.resolve("127.0.0.1", "81.2.69.160, not-an-ip") == "127.0.0.1"
    resolver = ClientIPResolver(["127.0.0.1", "10.0.0.0/8"])
    assert resolver.resolve("127.0.0.1", "evil, 10.0.0.3") == "10.0.0.3"


def test_ports_brackets_zones_and_mapped_addresses() -> None:
    assert parse_address("81.2.69.160:4431") is not None
    assert str(parse_address("[2a02:cf40::1]:443")) == "2a02:cf40::1"
    assert str(parse_address("fe80::1%eth0")) == "fe80::1"
    assert str(parse_address("::ffff:81.2.69.160")) == "81.2.69.160"
    assert str(parse_address(' "81.2.69.160" ')) == "81.2.69.160"
    assert parse_address("unknown") is None
    assert parse_address("") is None
    # An IPv4-mapped loopback peer is the loopback proxy.
    assert DEFAULT.resolve("::ffff:127.0.0.1", "81.2.69.160") == "81.2.69.160"


def test_unix_socket_peer() -> None:
    assert DEFAULT.resolve(None, "81.2.69.160") == "81.2.69.160"
    assert DEFAULT.resolve("", None) is None
    strict = ClientIPResolver(trust_unix_socket=False)
    assert strict.resolve(None, "81.2.69.160") is None


def test_private_addresses() -> None:
    for private in ("10.1.2.3", "192.168.0.9", "172.16.5.5", "127.0.0.1", "::1", "fe80::1"):
        assert is_private_address(private), private
    assert is_private_address("fd00::5")
    assert is_private_address(None)
    assert is_private_address("garbage")
    assert not is_private_address("81.2.69.160")
    assert not is_private_address("2a02:cf40::1")


def test_bad_trusted_proxy_config_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        parse_networks(["not a network"])
    assert len(parse_networks(["127.0.0.1", "::1/128", "10.0.0.0/8"])) == 3


_ip = st.ip_addresses().map(str)


def _untrusted(address: str) -> bool:
    parsed = parse_address(address)
    return parsed is not None and not DEFAULT.is_trusted(parsed)


@given(peer=_ip.filter(_untrusted), hops=st.lists(_ip))
def test_an_untrusted_peer_always_wins_whatever_the_header(peer: str, hops: list[str]) -> None:
    assert DEFAULT.resolve(peer, ", ".join(hops)) == str(parse_address(peer))


@given(client=_ip, spoofed=st.lists(st.text(max_size=20)))
def test_what_the_trusted_proxy_appended_wins_whatever_the_client_sent(
    client: str, spoofed: list[str]
) -> None:
    # Whatever the client put in the header, it cannot hide the address Caddy appended
    # (unless that address is itself a trusted proxy, i.e. the client is on loopback).
    header = ", ".join([*(s.replace(",", "") for s in spoofed), client])
    if _untrusted(client):
        assert DEFAULT.resolve("127.0.0.1", header) == str(parse_address(client))
