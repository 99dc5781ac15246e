"""API keys, users, login sessions and the failed-login limiter, on a real SQLite file."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from corral.supervisor.auth.credentials import Credentials
from corral.supervisor.auth.hashing import (
    PasswordHashing,
    constant_time_equal,
    display_prefix,
    new_api_key,
    new_session_token,
    token_hash,
)
from corral.supervisor.auth.identity import ConfigKey, Principal
from corral.supervisor.auth.login_limits import LoginRateLimited, LoginRateLimiter
from corral.supervisor.store import Store

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def cheap_passwords() -> PasswordHashing:
    # Real argon2id with tiny cost parameters, so the tests stay fast.
    return PasswordHashing(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "corral.db") as s:
        yield s


@pytest.fixture
def creds(store: Store, cheap_passwords: PasswordHashing, clock: Clock) -> Credentials:
    limiter = LoginRateLimiter(max_per_user=3, max_per_ip=5, window_s=600, clock=clock)
    return Credentials(
        store, passwords=cheap_passwords, session_ttl_s=3600, limiter=limiter, clock=clock
    )


def _db_bytes(store: Store) -> bytes:
    data = b""
    for suffix in ("", "-wal"):
        path = Path(str(store.path) + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


# -- secret helpers ----------------------------------------------------------------------


def test_generated_keys_and_tokens() -> None:
    keys = {new_api_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("crl-") and len(k) == 4 + 43 for k in keys)
    assert new_session_token().startswith("crs-")
    key = new_api_key()
    assert token_hash(key) == token_hash(key)
    assert len(token_hash(key)) == 64
    assert display_prefix(key) == key[:10] + "…"
    assert constant_time_equal("abc", "abc")
    assert not constant_time_equal("abc", "abd")


def test_password_hashing_is_argon2id(cheap_passwords: PasswordHashing) -> None:
    stored = cheap_passwords.hash(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert cheap_passwords.verify(stored, PASSWORD)
    assert not cheap_passwords.verify(stored, "wrong")
    assert not cheap_passwords.verify(None, PASSWORD)
    assert not cheap_passwords.verify("not a hash", PASSWORD)
    assert PasswordHashing().needs_rehash(stored)  # the defaults are stronger


def without_uid(principal: Principal | None) -> Principal | None:
    """A user's uid is random; the tests of who it is compare the rest."""
    if principal is None:
        return None
    assert principal.uid.startswith("user#")
    return dataclasses.replace(principal, uid="")


# -- API keys ----------------------------------------------------------------------------


def test_created_key_verifies_and_only_its_hash_is_stored(creds: Credentials, store: Store) -> None:
    key = creds.create_key("ci-bot", models=["qwen", "llama"])
    assert key.startswith("crl-")
    principal = creds.verify(key)
    assert principal == Principal("ci-bot", "key", False, frozenset({"qwen", "llama"}), "key#1")
    assert principal.allows_model("qwen")
    assert not principal.allows_model("other")
    assert key.encode() not in _db_bytes(store)
    assert token_hash(key).encode() in _db_bytes(store)


def test_missing_wrong_and_malformed_keys(creds: Credentials) -> None:
    creds.create_key("a")
    for presented in (None, "", "crl-wrong", "Bearer", "x" * 10_000, new_api_key()):
        assert creds.verify(presented) is None


def test_admin_key_and_all_models(creds: Credentials) -> None:
    principal = creds.verify(creds.create_key("ops", admin=True))
    assert principal is not None
    assert principal.admin
    assert principal.models is None
    assert principal.allows_model("anything")


def test_revoked_key_stops_working_and_its_name_is_free_again(creds: Credentials) -> None:
    key = creds.create_key("temp")
    assert creds.revoke_key("temp")
    assert creds.verify(key) is None
    assert not creds.revoke_key("temp")
    assert not creds.revoke_key("never-existed")
    new_key = creds.create_key("temp")
    assert creds.verify(new_key) is not None
    assert creds.verify(key) is None


def test_key_names_are_unique_and_validated(creds: Credentials) -> None:
    creds.create_key("dup")
    with pytest.raises(ValueError, match="already exists"):
        creds.create_key("dup")
    for bad in ("", "has space", "x" * 65, "semi;colon", "-leading"):
        with pytest.raises(ValueError, match="names are"):
            creds.create_key(bad)


def test_list_keys_never_shows_the_key_or_hash(creds: Credentials, clock: Clock) -> None:
    key = creds.create_key("one", admin=True)
    creds.create_key("two", models=["qwen"])
    creds.revoke_key("two")
    listed = creds.list_keys()
    assert [k.name for k in listed] == ["one"]
    assert (listed[0].admin, listed[0].created_at, listed[0].revoked_at) == (True, clock.now, None)
    assert listed[0].prefix == display_prefix(key)
    everything = creds.list_keys(include_revoked=True)
    assert [k.models for k in everything] == [None, frozenset({"qwen"})]
    text = repr(everything)
    assert key not in text
    assert token_hash(key) not in text
    assert "key_hash" not in text


def test_config_keys_plaintext_and_hashed(store: Store, cheap_passwords: PasswordHashing) -> None:
    plain = "a-long-config-key-0123456789"
    hashed_secret = new_api_key()
    creds = Credentials(
        store,
        passwords=cheap_passwords,
        config_keys=[
            ConfigKey.from_plaintext("cfg", plain, admin=True),
            ConfigKey.from_hash("cfg2", "sha256:" + token_hash(hashed_secret), models=["qwen"]),
        ],
    )
    assert creds.verify(plain) == Principal(
        "cfg", "config", True, None, ConfigKey.from_plaintext("cfg", plain).owner
    )
    assert creds.verify(hashed_secret) == Principal(
        "cfg2", "config", False, frozenset({"qwen"}), "config#" + token_hash(hashed_secret)[:16]
    )
    assert creds.verify(plain + "x") is None
    assert creds.auth_configured()
    with pytest.raises(ValueError, match="in the config"):
        creds.create_key("cfg")
    with pytest.raises(ValueError, match="64 hex"):
        ConfigKey.from_hash("bad", "1234")
    with pytest.raises(ValueError, match="unique"):
        Credentials(store, config_keys=[ConfigKey("a", "0" * 64), ConfigKey("a", "1" * 64)])


def test_a_config_key_owns_data_by_its_secret_and_adopts_what_its_name_owned(
    store: Store, cheap_passwords: PasswordHashing
) -> None:
    """Data of an older version, owned by a config key's name, goes to the key that holds the
    name when this version starts; a key put under that name later is someone new."""
    db = store.db
    with db.atomic():
        db.execute(
            "INSERT INTO conversations (id, owner, title, created_at, updated_at)"
            " VALUES ('c1', 'config:ops', 'old', 1.0, 1.0)"
        )
    first = ConfigKey.from_plaintext("ops", "the-first-ops-key-0123456789")
    creds = Credentials(store, passwords=cheap_passwords, config_keys=[first])
    owners = [r[0] for r in db.execute("SELECT owner FROM conversations WHERE id = 'c1'")]
    assert owners == [first.owner]
    assert creds.verify("the-first-ops-key-0123456789").owner == first.owner  # type: ignore[union-attr]
    # The operator replaces the secret under the same name (a reload): a new owner, who does
    # not see the first key's conversation.
    second = ConfigKey.from_plaintext("ops", "the-second-ops-key-987654321")
    creds.use_config_keys([second])
    assert second.owner != first.owner
    owners = [r[0] for r in db.execute("SELECT owner FROM conversations WHERE id = 'c1'")]
    assert owners == [first.owner]
    assert creds.verify("the-second-ops-key-987654321").owner == second.owner  # type: ignore[union-attr]


def test_short_config_key_is_warned_about_without_showing_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ConfigKey.from_plaintext("weak", "hunter2")
    assert "weak" in caplog.text
    assert "hunter2" not in caplog.text


def test_auth_configured(creds: Credentials) -> None:
    assert not creds.auth_configured()
    creds.create_key("k")
    assert creds.auth_configured()
    creds.revoke_key("k")
    assert not creds.auth_configured()
    creds.add_user("ann", PASSWORD)
    assert creds.auth_configured()


# -- users and sessions ------------------------------------------------------------------


def test_users(creds: Credentials, store: Store) -> None:
    creds.add_user("ann", PASSWORD, admin=True)
    with pytest.raises(ValueError, match="already exists"):
        creds.add_user("ann", PASSWORD)
    with pytest.raises(ValueError, match="at least"):
        creds.add_user("bob", "short")
    assert without_uid(creds.verify_password("ann", PASSWORD)) == Principal("ann", "user", True)
    assert creds.verify_password("ann", "wrong password") is None
    assert creds.verify_password("nobody", PASSWORD) is None
    assert [(u.name, u.admin) for u in creds.list_users()] == [("ann", True)]
    assert PASSWORD.encode() not in _db_bytes(store)


def test_login_logout_and_expiry(creds: Credentials, clock: Clock) -> None:
    creds.add_user("ann", PASSWORD)
    session = creds.login("ann", PASSWORD, "81.2.69.160")
    assert session is not None
    assert session.token.startswith("crs-")
    assert session.expires_at == clock.now + 3600
    assert without_uid(creds.verify(session.token)) == Principal("ann", "user", False)
    assert creds.login("ann", "wrong password", "81.2.69.160") is None
    assert creds.logout(session.token)
    assert creds.verify(session.token) is None
    assert not creds.logout(session.token)

    second = creds.login("ann", PASSWORD, None)
    assert second is not None
    clock.now += 3599
    assert creds.verify(second.token) is not None
    clock.now += 1
    assert creds.verify(second.token) is None  # expired, and deleted on the way


def test_password_change_and_user_removal_end_sessions(creds: Credentials) -> None:
    creds.add_user("ann", PASSWORD)
    creds.add_user("bob", PASSWORD)
    ann = creds.login("ann", PASSWORD, None)
    bob = creds.login("bob", PASSWORD, None)
    assert ann is not None
    assert bob is not None
    assert creds.set_password("ann", "a new password")
    assert creds.verify(ann.token) is None
    assert creds.verify_password("ann", "a new password") is not None
    assert not creds.set_password("nobody", "whatever123")
    assert creds.remove_user("bob")
    assert creds.verify(bob.token) is None
    assert not creds.remove_user("bob")


def test_delete_expired_sessions(creds: Credentials, clock: Clock) -> None:
    creds.add_user("ann", PASSWORD)
    creds.login("ann", PASSWORD, None)
    clock.now += 1800
    live = creds.login("ann", PASSWORD, None)
    clock.now += 2000
    assert creds.delete_expired_sessions() == 1
    assert live is not None
    assert creds.verify(live.token) is not None


def test_weak_stored_hash_is_upgraded_on_login(store: Store, clock: Clock) -> None:
    cheap = PasswordHashing(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    Credentials(store, passwords=cheap, clock=clock).add_user("ann", PASSWORD)
    stronger = PasswordHashing(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    creds = Credentials(store, passwords=stronger, clock=clock)
    assert creds.verify_password("ann", PASSWORD) is not None
    stored = store.db.execute("SELECT password_hash FROM users").fetchone()[0]
    assert "m=16,t=2" in stored
    assert creds.verify_password("ann", PASSWORD) is not None


# -- failed-login rate limit -------------------------------------------------------------


def test_failed_logins_slow_the_user_down_but_never_lock_the_owner_out(
    creds: Credentials, clock: Clock
) -> None:
    creds.add_user("ann", PASSWORD)
    for i in range(3):
        assert creds.login("ann", "wrong password", f"81.2.69.{i}") is None
    with pytest.raises(LoginRateLimited) as raised:
        creds.login("ann", PASSWORD, "89.160.20.1")  # another IP: the user name is slowed
    assert raised.value.retry_after == pytest.approx(1)
    with pytest.raises(LoginRateLimited):
        creds.login("ANN", PASSWORD, "89.160.20.2")  # no way around it by changing case
    # A guesser keeps failing from many IPs, each time as soon as it may: its waits double...
    waits = []
    for i in range(12):
        waits.append(creds.limiter.retry_after(f"198.51.100.{i}", "ann"))
        clock.now += waits[-1]
        assert creds.login("ann", "wrong password", f"198.51.100.{i}") is None
    assert waits[:4] == [pytest.approx(w) for w in (1, 2, 4, 8)]
    # ...but the owner never waits more than 30 s (the cap) to sign in with the right password.
    wait = creds.limiter.retry_after("89.160.20.1", "ann")
    assert 0 < wait <= 30
    clock.now += wait
    assert creds.login("ann", PASSWORD, "89.160.20.1") is not None


def test_failed_logins_slow_the_ip_across_user_names(creds: Credentials, clock: Clock) -> None:
    creds.add_user("ann", PASSWORD)
    for i in range(5):
        assert creds.login(f"guess{i}", "wrong password", "203.0.113.9") is None
    with pytest.raises(LoginRateLimited):
        creds.login("ann", PASSWORD, "203.0.113.9")
    assert creds.login("ann", PASSWORD, "81.2.69.160") is not None  # other IPs are fine
    # An IP's waits grow up to the whole window.
    for _ in range(20):
        clock.now += creds.limiter.retry_after("203.0.113.9", "x")
        creds.login("x", "wrong password", "203.0.113.9")
    assert creds.limiter.retry_after("203.0.113.9", "y") == pytest.approx(600)


def test_success_clears_the_user_count_but_not_the_ip_count(clock: Clock) -> None:
    limiter = LoginRateLimiter(max_per_user=2, max_per_ip=3, window_s=60, clock=clock)
    limiter.failure("1.1.1.1", "ann")
    limiter.success("1.1.1.1", "ann")
    limiter.failure("1.1.1.1", "ann")
    assert limiter.retry_after("1.1.1.1", "ann") == 0  # 1 failure for ann since success
    limiter.failure("1.1.1.1", "bob")
    assert limiter.retry_after("1.1.1.1", "carol") > 0  # the IP has 3 failures


def test_limiter_forgets_a_window_after_the_wait_and_memory_is_bounded(
    clock: Clock,
) -> None:
    limiter = LoginRateLimiter(max_per_user=2, max_per_ip=100, window_s=60, max_tracked=10,
                               clock=clock)  # fmt: skip
    limiter.failure(None, "ann")
    clock.now += 30
    limiter.failure(None, "ann")
    assert limiter.retry_after(None, "ann") == pytest.approx(1)
    clock.now += 61  # a window after it may try again
    assert limiter.retry_after(None, "ann") == 0
    limiter.failure(None, "ann")
    assert limiter.retry_after(None, "ann") == 0  # counting starts again
    for i in range(100):
        limiter.failure(f"10.0.0.{i}", f"user{i}")
    assert len(limiter._failures) <= 10
