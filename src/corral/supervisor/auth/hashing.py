"""Secret material: API keys, session tokens and password hashes.

API keys and session tokens are 256 random bits from :mod:`secrets`. They are stored as a
SHA-256 digest, not with a slow KDF: a slow hash protects *guessable* secrets, and nobody guesses
256 random bits, with or without a fast hash. A fast, unsalted digest also lets a presented key
be found through an index in one lookup, where a salted KDF would have to be run against every
stored key on every request. Passwords are guessable, so they get argon2id (memory-hard).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_PREFIX = "crl-"
SESSION_TOKEN_PREFIX = "crs-"
_TOKEN_BYTES = 32  # 256 bits
# How much of a key `corral keys list` shows to tell keys apart: 6 of 43 random characters
# (36 of 256 bits), which leaves far more than enough unknown.
DISPLAY_PREFIX_CHARS = 6


def new_api_key() -> str:
    """A fresh API key, ``crl-`` and 43 URL-safe characters. Shown to the operator only once."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def new_session_token() -> str:
    return SESSION_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def display_prefix(key: str) -> str:
    """The part of a key that may be listed, e.g. ``crl-Ab3xYz…``."""
    head = API_KEY_PREFIX if key.startswith(API_KEY_PREFIX) else ""
    return head + key[len(head) : len(head) + DISPLAY_PREFIX_CHARS] + "…"


def token_hash(secret: str) -> str:
    """Storage form of a key or token: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two secrets (or their digests) without leaking where they first differ."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class PasswordHashing:
    """argon2id through argon2-cffi, with its current recommended parameters by default.

    Tests pass a cheap :class:`argon2.PasswordHasher` so that they run fast; production keeps
    the defaults (RFC 9106 low-memory profile: 64 MiB, 3 passes).
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when the user does not exist, so that an unknown name costs the
        # same time as a wrong password and user names cannot be probed by timing.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``stored_hash=None`` burns the same time, then False."""
        try:
            return self._hasher.verify(stored_hash or self._dummy_hash, password) and (
                stored_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with weaker parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
