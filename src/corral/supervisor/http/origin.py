"""Who may drive this server from a browser: the ``Host`` and ``Origin`` checks.

Without keys, Corral trusts every loopback caller, and a browser on the same machine is one:
any page the user visits could otherwise post to ``127.0.0.1:8080`` (cross-site request
forgery), and a DNS-rebinding page, whose own name resolves to 127.0.0.1, could even read the
answers, because to the browser that is its own origin. Two checks close both, with keys or
without:

- ``Host`` must be a name this server is configured for: the loopback names, the address it
  binds, ``allowed_hosts``, or an IP literal (a rebinding attack needs a name the attacker's
  DNS controls, so an address in ``Host`` is never one). A rebinding page sends its own name.
- A state-changing request (anything but GET, HEAD, OPTIONS) that carries ``Origin`` must come
  from the server's own origin or one listed in ``cors_origins``. Browsers always send
  ``Origin`` on such requests; API clients (the ``openai`` SDK, curl) send none and pass.

Behind a reverse proxy (Caddy sends ``Host: 127.0.0.1:8080`` and the public name in
``X-Forwarded-Host``) the server's own origin is the forwarded one, read only when the peer is
a trusted proxy. A page cannot use that header against us: setting it makes a cross-site
request need a CORS preflight, which fails, and a rebinding page fails the ``Host`` check first.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from corral.supervisor.appkeys import CLIENT_IP, SETTINGS
from corral.supervisor.errors import Forbidden
from corral.supervisor.http.client_address import parse_address
from corral.supervisor.http.headers import header
from corral.supervisor.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "*"})
# Monitors probe /health by whatever name they know the host by; it tells nothing.
_HOST_EXEMPT = frozenset({"/health"})


def split_host(value: str, default_port: int | None) -> tuple[str, int | None] | None:
    """``name[:port]`` or ``[v6]:port`` as (lower-case name, port); None when malformed."""
    try:
        url = URL.build(scheme="http", authority=value.strip())
    except ValueError:
        return None
    if url.host is None:
        return None
    return url.host.lower().rstrip("."), url.explicit_port or default_port


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(name: str, settings: Settings) -> bool:
    allowed = {h.lower().rstrip(".") for h in settings.allowed_hosts}
    if "*" in allowed or name in LOOPBACK_NAMES or is_ip_literal(name):
        return True
    if name.endswith(".localhost"):  # RFC 6761: always loopback, never resolved remotely
        return True
    bound = settings.host.lower().strip("[]")
    return name in allowed or (bound not in _WILDCARD_BINDS and name == bound)


def _own_authority(request: web.Request) -> tuple[str, str | None]:
    """(scheme, authority) the client used: forwarded by a trusted proxy, else our own."""
    peer = parse_address(request.remote)
    if peer is not None and request.app[CLIENT_IP].is_trusted(peer):
        forwarded_host = header(request, "X-Forwarded-Host")
        if forwarded_host:
            proto = header(request, "X-Forwarded-Proto") or request.scheme
            return proto.split(",")[0].strip().lower(), forwarded_host.split(",")[0].strip()
    return request.scheme, header(request, "Host")


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def origin_allowed(request: web.Request, origin: str, settings: Settings) -> bool:
    if origin in settings.cors_origins or "*" in settings.cors_origins:
        return True
    try:
        url = URL(origin)
    except ValueError:
        return False
    if url.scheme not in ("http", "https") or url.host is None:
        return False  # "null" (sandboxed frames, file://) and anything stranger
    scheme, authority = _own_authority(request)
    own = split_host(authority, _default_port(scheme)) if authority else None
    theirs = (url.host.lower().rstrip("."), url.explicit_port or _default_port(url.scheme))
    return own is not None and scheme == url.scheme and own == theirs


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS].current
    host = header(request, "Host")
    if host is not None and request.path not in _HOST_EXEMPT:
        parsed = split_host(host, None)
        if parsed is None or not host_allowed(parsed[0], settings):
            raise Forbidden(
                "this server does not answer to that host name; add it to allowed_hosts",
                code="host_not_allowed",
            )
    origin = header(request, "Origin")
    if request.method not in _SAFE_METHODS:
        cross_site = request.headers.get("Sec-Fetch-Site") == "cross-site"
        if (origin is not None and not origin_allowed(request, origin, settings)) or (
            origin is None and cross_site
        ):
            raise Forbidden(
                "cross-origin requests are refused; add the origin to cors_origins to allow it",
                code="origin_not_allowed",
            )
    return await handler(request)
