"""Who may call what: the auth middleware and the rules it applies.

- ``/health``, the web UI's static files, ``/api/ui-config`` and ``/api/login`` are open.
- With no key or user configured, callers are an anonymous admin (the server then listens on
  loopback only, unless started with ``insecure_no_auth``), but ``/admin/*`` and ``/metrics``
  are served only to loopback clients.
- Once any key or user exists, every other route needs ``Authorization: Bearer KEY`` (or
  ``x-api-key``); ``/admin/*`` and the dashboard API need an admin key or user; ``/metrics``
  is open to admin keys and to loopback.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from corral.supervisor.appkeys import FACTS, PRINCIPAL, SECURITY
from corral.supervisor.auth.credentials import Credentials
from corral.supervisor.auth.identity import ConfigKey, Principal
from corral.supervisor.auth.login_limits import LoginRateLimiter
from corral.supervisor.errors import Forbidden, Unauthorized
from corral.supervisor.http.headers import header
from corral.supervisor.settings import Settings
from corral.supervisor.store import Store

_OPEN_PATHS = frozenset({"/health", "/api/ui-config", "/api/login"})
_GUARDED_PREFIXES = ("/v1/", "/admin/", "/api/", "/metrics")
# The CLI may add a key while the daemon runs, so "is auth on?" is a database question;
# asking it once a second is plenty.
_CONFIGURED_TTL = 1.0


def config_keys(settings: Settings) -> list[ConfigKey]:
    keys = []
    for item in settings.api_keys:
        if item.key is not None:
            keys.append(
                ConfigKey.from_plaintext(
                    item.name, item.key.get_secret_value(), admin=item.admin, models=item.models
                )
            )
        else:
            assert item.key_sha256 is not None
            keys.append(
                ConfigKey.from_hash(
                    item.name, item.key_sha256, admin=item.admin, models=item.models
                )
            )
    return keys


def build_credentials(store: Store, settings: Settings) -> Credentials:
    credentials = Credentials(store, limiter=LoginRateLimiter())
    apply_access_settings(credentials, settings)
    return credentials


ACCESS_SETTINGS = (
    "api_keys",
    "session_lifetime",
    "login_max_failures_per_user",
    "login_max_failures_per_ip",
    "login_failure_window",
)


def apply_access_settings(credentials: Credentials, settings: Settings) -> None:
    """The config's keys, the login lifetime and limits (at start, and on every reload)."""
    credentials.use_config_keys(config_keys(settings))
    credentials.session_ttl_s = settings.session_lifetime
    credentials.limiter.configure(
        max_per_user=settings.login_max_failures_per_user,
        max_per_ip=settings.login_max_failures_per_ip,
        window_s=settings.login_failure_window,
    )


def presented_secret(request: web.Request) -> str | None:
    scheme, _, value = (header(request, "Authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return header(request, "x-api-key") or None


def is_loopback(address: str | None) -> bool:
    if address is None:
        return False
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass
class Security:
    credentials: Credentials
    # Without keys, callers are let in only where that was safe at start: a loopback address
    # (or --insecure-no-auth). A server that bound a public address because keys existed
    # stays closed if the last key is revoked.
    open_without_keys: bool = True
    _configured: bool = False
    _checked_at: float = field(default=-1e9)

    def auth_configured(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at > _CONFIGURED_TTL:
            self._configured = self.credentials.auth_configured()
            self._checked_at = now
        return self._configured

    def forget_cache(self) -> None:
        self._checked_at = -1e9

    def principal_for(self, request: web.Request, client_ip: str | None) -> Principal:
        path = request.path
        admin_route = path.startswith("/admin/") or path == "/metrics"
        secret = presented_secret(request)
        if not self.auth_configured():
            if not self.open_without_keys:
                raise Unauthorized(
                    "no API keys are configured and this server is not on loopback; "
                    "create one with `corral keys create`",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if admin_route and not is_loopback(client_ip):
                raise Forbidden(
                    "admin routes are served only to loopback clients until keys are configured",
                    code="loopback_only",
                )
            return Principal.anonymous(admin=True)
        principal = self.credentials.verify(secret) if secret else None
        metrics_from_loopback = path == "/metrics" and is_loopback(client_ip)
        if metrics_from_loopback and (principal is None or not principal.admin):
            return principal or Principal.anonymous(admin=False)
        if principal is None:
            raise Unauthorized(
                "a valid API key is required (Authorization: Bearer KEY)"
                if secret is None
                else "the API key or session token is not valid",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if admin_route and not principal.admin:
            raise Forbidden("this route needs an admin key", code="admin_required")
        return principal


def open_without_keys(settings: Settings) -> bool:
    host = settings.host
    loopback = host == "localhost" or is_loopback(host)
    return loopback or settings.insecure_no_auth


def needs_auth(path: str) -> bool:
    if path in _OPEN_PATHS:
        return False
    return path == "/metrics" or path.startswith(_GUARDED_PREFIXES)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if needs_auth(request.path) and request.method != "OPTIONS":
        facts = request.get(FACTS)
        client_ip = facts.client_ip if facts is not None else request.remote
        request[PRINCIPAL] = request.app[SECURITY].principal_for(request, client_ip)
    return await handler(request)
