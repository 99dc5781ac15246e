"""Which address a request really came from.

The socket peer is the only address nobody can forge. Behind a reverse proxy (Caddy on the same
host) the peer is the proxy, and the client is the entry that the proxy appended to
``X-Forwarded-For``. Anything left of that entry was sent by the client and proves nothing, so
the header is read right to left, skipping only hops that are themselves trusted proxies, and it
is not read at all when the peer is not a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TRUSTED_PROXIES: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


def parse_address(text: str | None) -> IPAddress | None:
    """An address from a peer string or a header entry; None when it is not an IP address.

    Accepts ``[v6]:port``, ``v4:port`` and zone ids, and maps ``::ffff:a.b.c.d`` to IPv4 so that
    one client has one spelling in the analytics.
    """
    if not text:
        return None
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_private_address(text: str | None) -> bool:
    """True for addresses that are not on the public internet (private, loopback, link-local,
    unique-local, reserved...). Unparseable input counts as private: it has no country either."""
    address = parse_address(text)
    return address is None or not address.is_global


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse the configured trusted proxies; a bare address means that one host."""
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks)


class ClientIPResolver:
    """Resolves the client address from the peer and the ``X-Forwarded-For`` header(s)."""

    def __init__(
        self,
        trusted_proxies: Iterable[str] = DEFAULT_TRUSTED_PROXIES,
        *,
        trust_unix_socket: bool = True,
    ) -> None:
        self._trusted = parse_networks(trusted_proxies)
        # A Unix socket peer (no address) can only be a local process with permission on the
        # socket file, the same trust as loopback.
        self._trust_unix_socket = trust_unix_socket

    def trust(self, trusted_proxies: Iterable[str]) -> None:
        """Replace the trusted networks (a reload); one assignment, so readers see old or new."""
        self._trusted = parse_networks(trusted_proxies)

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: str | Sequence[str] | None) -> str | None:
        """The client address as text, or None when there is none (Unix socket, no header).

        ``peer`` is the socket's remote address (aiohttp's ``request.remote``);
        ``forwarded_for`` is the header value, or all its values in order if it was repeated.
        """
        peer_address = parse_address(peer)
        client: str | None
        if peer_address is None:
            # aiohttp reports no remote address for a Unix socket peer.
            if peer or not self._trust_unix_socket:
                return None
            client = None
        elif self.is_trusted(peer_address):
            client = str(peer_address)
        else:
            # A spoofed header from a client that talks to us directly is ignored.
            return str(peer_address)
        for entry in reversed(_entries(forwarded_for)):
            address = parse_address(entry)
            if address is None:
                # Garbage where a trusted hop should have written an address: stop at the last
                # address we can vouch for rather than believe anything further left.
                break
            client = str(address)
            if not self.is_trusted(address):
                break
        return client


def _entries(forwarded_for: str | Sequence[str] | None) -> list[str]:
    if not forwarded_for:
        return []
    values = [forwarded_for] if isinstance(forwarded_for, str) else list(forwarded_for)
    # Repeated headers are one list in order (RFC 9110 section 5.3).
    return [part for value in values for part in value.split(",") if part.strip()]
