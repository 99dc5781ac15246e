"""Who is calling: API keys, web UI users and their login sessions.

Keys come from the config file (plaintext or SHA-256) or from the ``api_keys`` table (only the
SHA-256 is stored; the plaintext is returned once by :meth:`Credentials.create_key`). Users log
in with a password (argon2id) and get a bearer session token that expires. Failed logins are
rate limited per client IP and per user name. No method logs or returns a stored secret.

Blocking calls (SQLite, argon2): :meth:`Credentials.verify` is a single indexed read and may run
on the event loop; :meth:`Credentials.login` and the user methods hash passwords (tens of
milliseconds) and belong in ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from corral.supervisor.auth.hashing import (
    API_KEY_PREFIX,
    SESSION_TOKEN_PREFIX,
    PasswordHashing,
    constant_time_equal,
    display_prefix,
    new_api_key,
    new_session_token,
    token_hash,
)
from corral.supervisor.store import Store

log = logging.getLogger("corral.credentials")

PrincipalKind = Literal["key", "user", "config", "anonymous"]
DEFAULT_SESSION_TTL_S = 7 * 86400.0
MIN_PASSWORD_CHARS = 8
# Longer presented values are refused before hashing: no key or token is that long.
_MAX_PRESENTED_CHARS = 512
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``models`` None means every model."""

    name: str
    kind: PrincipalKind
    admin: bool = False
    models: frozenset[str] | None = None

    @classmethod
    def anonymous(cls, *, admin: bool) -> Principal:
        """The caller when auth is off (loopback without keys, or ``--insecure-no-auth``)."""
        return cls(name="anonymous", kind="anonymous", admin=admin)

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class ConfigKey:
    """A key from the config file or environment, held only as its SHA-256."""

    name: str
    sha256: str
    admin: bool = False
    models: frozenset[str] | None = None

    @classmethod
    def from_plaintext(
        cls, name: str, key: str, *, admin: bool = False, models: Iterable[str] | None = None
    ) -> ConfigKey:
        if len(key) < 16:
            log.warning("config key %r is shorter than 16 characters and easy to guess", name)
        return cls(name, token_hash(key), admin, _models(models))

    @classmethod
    def from_hash(
        cls, name: str, sha256: str, *, admin: bool = False, models: Iterable[str] | None = None
    ) -> ConfigKey:
        digest = sha256.strip().lower().removeprefix("sha256:")
        if not _SHA256_HEX.match(digest):
            raise ValueError(f"config key {name!r}: expected 64 hex digits of SHA-256")
        return cls(name, digest, admin, _models(models))


@dataclass(frozen=True)
class KeyInfo:
    """What `corral keys list` shows: never the key or its hash."""

    name: str
    prefix: str
    admin: bool
    models: frozenset[str] | None
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True)
class UserInfo:
    name: str
    admin: bool
    created_at: float


@dataclass(frozen=True)
class LoginSession:
    token: str  # the bearer token; give it to the client, never log it
    principal: Principal
    expires_at: float


class LoginRateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after:.0f} s")
        self.retry_after = retry_after


def _models(models: Iterable[str] | None) -> frozenset[str] | None:
    return None if models is None else frozenset(m.strip() for m in models if m.strip())


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError("names are 1-64 characters: letters, digits and . _ @ -")


class LoginRateLimiter:
    """Sliding-window count of failed logins per client IP and per user name.

    An IP may fail more often than a user (several people behind one NAT); a user name is
    limited from all IPs together, which stops a distributed guess at one account. Memory is
    bounded: past ``max_tracked`` names and IPs the least recently failed is forgotten.
    """

    def __init__(
        self,
        *,
        max_per_user: int = 5,
        max_per_ip: int = 20,
        window_s: float = 900.0,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"user": max_per_user, "ip": max_per_ip}
        self._window = window_s
        self._max_tracked = max_tracked
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()  # login runs in worker threads

    def _keys(self, ip: str | None, user: str) -> list[tuple[str, str]]:
        keys = [("user", user.lower())]
        if ip:
            keys.append(("ip", ip))
        return keys

    def retry_after(self, ip: str | None, user: str) -> float:
        """Seconds until a login attempt is allowed again; 0.0 when it is allowed now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(ip, user):
                times = self._pruned(key, now)
                if times is not None and len(times) >= self._limits[key[0]]:
                    wait = max(wait, times[0] + self._window - now)
        return wait

    def failure(self, ip: str | None, user: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(ip, user):
                times = self._pruned(key, now)
                if times is None:
                    times = self._failures[key] = deque()
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self._max_tracked:
                self._failures.popitem(last=False)

    def success(self, ip: str | None, user: str) -> None:
        # Only the user's count is cleared: one valid account must not reset an IP that is
        # guessing at others.
        with self._lock:
            self._failures.pop(("user", user.lower()), None)

    def _pruned(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times


class Credentials:
    """The keys, users and sessions service over the store's tables."""

    def __init__(
        self,
        store: Store,
        *,
        config_keys: Iterable[ConfigKey] = (),
        passwords: PasswordHashing | None = None,
        session_ttl_s: float = DEFAULT_SESSION_TTL_S,
        limiter: LoginRateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config_keys = tuple(config_keys)
        names = [k.name for k in self._config_keys]
        if len(set(names)) != len(names):
            raise ValueError("config key names must be unique")
        self._passwords = passwords or PasswordHashing()
        self.session_ttl_s = session_ttl_s
        self.limiter = limiter or LoginRateLimiter()
        self._clock = clock

    def use_config_keys(self, config_keys: Iterable[ConfigKey]) -> None:
        """Replace the keys from the config (a reload); stored keys and sessions stay."""
        keys = tuple(config_keys)
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise ValueError("config key names must be unique")
        self._config_keys = keys

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return list(self._store.db.query(sql, list(args)))

    def auth_configured(self) -> bool:
        """True when any key or user exists: the server may then bind a public address."""
        if self._config_keys:
            return True
        return bool(
            self._rows(
                "SELECT 1 FROM api_keys WHERE revoked_at IS NULL"
                " UNION ALL SELECT 1 FROM users LIMIT 1"
            )
        )

    # -- verification ------------------------------------------------------------------

    def verify(self, presented: str | None) -> Principal | None:
        """The principal for a presented API key or session token, or None."""
        if not presented or len(presented) > _MAX_PRESENTED_CHARS:
            return None
        presented = presented.strip()
        digest = token_hash(presented)
        found = self._verify_config(digest)
        if found is not None:
            return found
        if presented.startswith(SESSION_TOKEN_PREFIX):
            return self.verify_session(presented)
        if presented.startswith(API_KEY_PREFIX):
            return self._verify_stored_key(digest)
        return None

    def _verify_config(self, digest: str) -> Principal | None:
        match: ConfigKey | None = None
        # Every configured key is compared, in constant time, so the timing does not tell
        # which (or whether any) key was close.
        for key in self._config_keys:
            if constant_time_equal(key.sha256, digest):
                match = key
        if match is None:
            return None
        return Principal(match.name, "config", match.admin, match.models)

    def _verify_stored_key(self, digest: str) -> Principal | None:
        # The index lookup is by digest; an attacker timing it learns about SHA-256 outputs of
        # their own guesses, which says nothing about any stored key.
        rows = self._rows(
            "SELECT name, key_hash, admin, models FROM api_keys"
            " WHERE key_hash = ? AND revoked_at IS NULL",
            [digest],
        )
        if not rows or not constant_time_equal(rows[0]["key_hash"], digest):
            return None
        row = rows[0]
        models = None if row["models"] is None else frozenset(json.loads(row["models"]))
        return Principal(row["name"], "key", bool(row["admin"]), models)

    # -- API keys ----------------------------------------------------------------------

    def create_key(
        self, name: str, *, admin: bool = False, models: Iterable[str] | None = None
    ) -> str:
        """Store a new key and return its plaintext: the only time anyone sees it."""
        _check_name(name)
        if any(k.name == name for k in self._config_keys):
            raise ValueError(f"a key named {name!r} is already in the config")
        if self._rows("SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", [name]):
            raise ValueError(f"a key named {name!r} already exists")
        key = new_api_key()
        allowed = _models(models)
        self._store.db.execute(
            "INSERT INTO api_keys (name, key_hash, prefix, admin, models, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                name,
                token_hash(key),
                display_prefix(key),
                int(admin),
                None if allowed is None else json.dumps(sorted(allowed)),
                self._clock(),
            ],
        )
        log.info("API key %r created (admin=%s)", name, admin)
        return key

    def list_keys(self, *, include_revoked: bool = False) -> list[KeyInfo]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return [
            KeyInfo(
                name=row["name"],
                prefix=row["prefix"],
                admin=bool(row["admin"]),
                models=None if row["models"] is None else frozenset(json.loads(row["models"])),
                created_at=row["created_at"],
                revoked_at=row["revoked_at"],
            )
            for row in self._rows(
                "SELECT name, prefix, admin, models, created_at, revoked_at"
                f" FROM api_keys{where} ORDER BY created_at, id"
            )
        ]

    def revoke_key(self, name: str) -> bool:
        """Revoke the live key with this name; False when there is none."""
        cursor = self._store.db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            [self._clock(), name],
        )
        if cursor.rowcount:
            log.info("API key %r revoked", name)
        return cursor.rowcount > 0

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str, password: str, *, admin: bool = False) -> None:
        _check_name(name)
        _check_password(password)
        if self._rows("SELECT 1 FROM users WHERE name = ?", [name]):
            raise ValueError(f"user {name!r} already exists")
        self._store.db.execute(
            "INSERT INTO users (name, password_hash, admin, created_at) VALUES (?, ?, ?, ?)",
            [name, self._passwords.hash(password), int(admin), self._clock()],
        )
        log.info("user %r added (admin=%s)", name, admin)

    def set_password(self, name: str, password: str) -> bool:
        """Change a password and end that user's sessions; False when there is no such user."""
        _check_password(password)
        new_hash = self._passwords.hash(password)  # slow: before the transaction, not in it
        db = self._store.db
        with db.atomic():
            cursor = db.execute(
                "UPDATE users SET password_hash = ? WHERE name = ?", [new_hash, name]
            )
            db.execute(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = ?)",
                [name],
            )
        return cursor.rowcount > 0

    def remove_user(self, name: str) -> bool:
        # Sessions go with the user (ON DELETE CASCADE).
        return self._store.db.execute("DELETE FROM users WHERE name = ?", [name]).rowcount > 0

    def list_users(self) -> list[UserInfo]:
        return [
            UserInfo(row["name"], bool(row["admin"]), row["created_at"])
            for row in self._rows("SELECT name, admin, created_at FROM users ORDER BY name")
        ]

    def verify_password(self, name: str, password: str) -> Principal | None:
        """Check a password (no rate limit: use :meth:`login` for anything a client drives)."""
        rows = self._rows("SELECT id, password_hash, admin FROM users WHERE name = ?", [name])
        stored = rows[0]["password_hash"] if rows else None
        if not self._passwords.verify(stored, password) or not rows:
            return None
        if stored is not None and self._passwords.needs_rehash(stored):
            self._store.db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?",
                [self._passwords.hash(password), rows[0]["id"]],
            )
        return Principal(name, "user", bool(rows[0]["admin"]))

    # -- login sessions ----------------------------------------------------------------

    def login(self, name: str, password: str, ip: str | None) -> LoginSession | None:
        """A new session for the right password, None for a wrong one.

        Raises :class:`LoginRateLimited` (without checking the password) while this IP or this
        user name has too many recent failures.
        """
        wait = self.limiter.retry_after(ip, name)
        if wait > 0:
            raise LoginRateLimited(wait)
        principal = self.verify_password(name, password)
        if principal is None:
            self.limiter.failure(ip, name)
            log.info("failed login for user %r from %s", name, ip or "-")
            return None
        self.limiter.success(ip, name)
        token = new_session_token()
        now = self._clock()
        expires_at = now + self.session_ttl_s
        self._store.db.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
            " SELECT ?, id, ?, ? FROM users WHERE name = ?",
            [token_hash(token), now, expires_at, name],
        )
        log.info("user %r logged in from %s", name, ip or "-")
        return LoginSession(token, principal, expires_at)

    def verify_session(self, token: str) -> Principal | None:
        digest = token_hash(token)
        rows = self._rows(
            "SELECT s.token_hash, s.expires_at, u.name, u.admin FROM sessions AS s"
            " JOIN users AS u ON u.id = s.user_id WHERE s.token_hash = ?",
            [digest],
        )
        if not rows or not constant_time_equal(rows[0]["token_hash"], digest):
            return None
        if rows[0]["expires_at"] <= self._clock():
            self._store.db.execute("DELETE FROM sessions WHERE token_hash = ?", [digest])
            return None
        return Principal(rows[0]["name"], "user", bool(rows[0]["admin"]))

    def logout(self, token: str) -> bool:
        cursor = self._store.db.execute(
            "DELETE FROM sessions WHERE token_hash = ?", [token_hash(token)]
        )
        return cursor.rowcount > 0

    def delete_expired_sessions(self) -> int:
        """For the daily sweep, next to the analytics retention."""
        cursor = self._store.db.execute(
            "DELETE FROM sessions WHERE expires_at <= ?", [self._clock()]
        )
        return cursor.rowcount


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_CHARS} characters")
