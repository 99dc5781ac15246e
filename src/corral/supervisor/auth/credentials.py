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
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

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
from corral.supervisor.auth.identity import (
    DEFAULT_SESSION_TTL_S,
    MAX_PRESENTED_CHARS,
    ConfigKey,
    KeyInfo,
    LoginSession,
    Principal,
    UserInfo,
    check_name,
    check_password,
    model_set,
)
from corral.supervisor.auth.login_limits import LoginRateLimited, LoginRateLimiter
from corral.supervisor.store import Store

log = logging.getLogger("corral.credentials")


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
        self._config_keys: tuple[ConfigKey, ...] = ()
        self.use_config_keys(config_keys)
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
        self._adopt_named_data(keys)

    def _adopt_named_data(self, keys: tuple[ConfigKey, ...]) -> None:
        # Before config keys owned data by their secret's digest, they owned it by name. The
        # conversations of a name move, once, to the key that holds that name when this
        # version first starts; a later key under the same name is someone new.
        db = self._store.db
        with db.atomic():
            for key in keys:
                db.execute(
                    "UPDATE conversations SET owner = ? WHERE owner = ?",
                    [key.owner, f"config:{key.name}"],
                )

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
        if not presented or len(presented) > MAX_PRESENTED_CHARS:
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
        return Principal(match.name, "config", match.admin, match.models, match.owner)

    def _verify_stored_key(self, digest: str) -> Principal | None:
        # The index lookup is by digest; an attacker timing it learns about SHA-256 outputs of
        # their own guesses, which says nothing about any stored key.
        rows = self._rows(
            "SELECT id, name, key_hash, admin, models FROM api_keys"
            " WHERE key_hash = ? AND revoked_at IS NULL",
            [digest],
        )
        if not rows or not constant_time_equal(rows[0]["key_hash"], digest):
            return None
        row = rows[0]
        models = None if row["models"] is None else frozenset(json.loads(row["models"]))
        return Principal(row["name"], "key", bool(row["admin"]), models, f"key#{row['id']}")

    # -- API keys ----------------------------------------------------------------------

    def create_key(
        self, name: str, *, admin: bool = False, models: Iterable[str] | None = None
    ) -> str:
        """Store a new key and return its plaintext: the only time anyone sees it."""
        check_name(name)
        if any(k.name == name for k in self._config_keys):
            raise ValueError(f"a key named {name!r} is already in the config")
        if self._rows("SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", [name]):
            raise ValueError(f"a key named {name!r} already exists")
        key = new_api_key()
        allowed = model_set(models)
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
        check_name(name)
        check_password(password)
        if self._rows("SELECT 1 FROM users WHERE name = ?", [name]):
            raise ValueError(f"user {name!r} already exists")
        self._store.db.execute(
            "INSERT INTO users (name, password_hash, admin, created_at, uid)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                name,
                self._passwords.hash(password),
                int(admin),
                self._clock(),
                secrets.token_hex(12),
            ],
        )
        log.info("user %r added (admin=%s)", name, admin)

    def set_password(self, name: str, password: str) -> bool:
        """Change a password and end that user's sessions; False when there is no such user."""
        check_password(password)
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
        rows = self._rows("SELECT id, uid, password_hash, admin FROM users WHERE name = ?", [name])
        stored = rows[0]["password_hash"] if rows else None
        if not self._passwords.verify(stored, password) or not rows:
            return None
        if stored is not None and self._passwords.needs_rehash(stored):
            self._store.db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?",
                [self._passwords.hash(password), rows[0]["id"]],
            )
        return Principal(name, "user", bool(rows[0]["admin"]), uid=f"user#{rows[0]['uid']}")

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
            "SELECT s.token_hash, s.expires_at, u.uid, u.name, u.admin FROM sessions AS s"
            " JOIN users AS u ON u.id = s.user_id WHERE s.token_hash = ?",
            [digest],
        )
        if not rows or not constant_time_equal(rows[0]["token_hash"], digest):
            return None
        if rows[0]["expires_at"] <= self._clock():
            self._store.db.execute("DELETE FROM sessions WHERE token_hash = ?", [digest])
            return None
        row = rows[0]
        return Principal(row["name"], "user", bool(row["admin"]), uid=f"user#{row['uid']}")

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


def _new_uid() -> str:
    # Random, not the row id: SQLite gives a deleted last row's id to the next user.
    return secrets.token_hex(12)
