"""Who a caller is: principals, configured keys, the listings of keys, users and sessions."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from corral.supervisor.auth.hashing import (
    token_hash,
)

log = logging.getLogger("corral.credentials")

PrincipalKind = Literal["key", "user", "config", "anonymous"]
DEFAULT_SESSION_TTL_S = 7 * 86400.0
MIN_PASSWORD_CHARS = 8
# Longer presented values are refused before hashing: no key or token is that long.
MAX_PRESENTED_CHARS = 512
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``models`` None means every model."""

    name: str
    kind: PrincipalKind
    admin: bool = False
    models: frozenset[str] | None = None
    # What the caller's data (conversations, streams) belongs to. A stored key is its row id,
    # a user a random uid, never the name: a key revoked and created again under the same name, or a
    # user removed and added again, is someone new who must not see the old one's data.
    # A config key is its secret's digest: a key the operator replaces under the same name is
    # someone new too.
    uid: str = ""

    @property
    def owner(self) -> str:
        return self.uid or f"{self.kind}:{self.name}"

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

    @property
    def owner(self) -> str:
        """What this key's data belongs to: its digest (a prefix, which identifies it among
        keys without being usable as one), never its name."""
        return f"config#{self.sha256[:16]}"

    @classmethod
    def from_plaintext(
        cls, name: str, key: str, *, admin: bool = False, models: Iterable[str] | None = None
    ) -> ConfigKey:
        if len(key) < 16:
            log.warning("config key %r is shorter than 16 characters and easy to guess", name)
        return cls(name, token_hash(key), admin, model_set(models))

    @classmethod
    def from_hash(
        cls, name: str, sha256: str, *, admin: bool = False, models: Iterable[str] | None = None
    ) -> ConfigKey:
        digest = sha256.strip().lower().removeprefix("sha256:")
        if not _SHA256_HEX.match(digest):
            raise ValueError(f"config key {name!r}: expected 64 hex digits of SHA-256")
        return cls(name, digest, admin, model_set(models))


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


def model_set(models: Iterable[str] | None) -> frozenset[str] | None:
    return None if models is None else frozenset(m.strip() for m in models if m.strip())


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError("names are 1-64 characters: letters, digits and . _ @ -")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_CHARS} characters")
