"""Access control, analytics and metrics end to end: real supervisor, real SQLite, real GeoIP."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import SupervisorFactory
from tests.support.supervisor_proc import Supervisor, wait_until
from tests.support_mmdb import build_country_mmdb

pytestmark = pytest.mark.e2e

ADMIN_KEY = "admin-key-0123456789abcdef"
USER_KEY = "user-key-0123456789abcdef"
KEYS = f"""
[[api_keys]]
name = "ops"
key = "{ADMIN_KEY}"
admin = true

[[api_keys]]
name = "app"
key = "{USER_KEY}"
models = ["fake", "fake-slow"]
"""
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def corral(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.supervisor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def summary(http: httpx.Client, **params: str) -> dict[str, object]:
    response = http.get(
        "/admin/analytics/summary", params={"limit": "200", **params}, headers=auth(ADMIN_KEY)
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def events(http: httpx.Client, **params: str) -> list[dict[str, object]]:
    return summary(http, **params)["events"]["items"]  # type: ignore[index,no-any-return]


def test_api_keys_guard_every_route(supervisor: SupervisorFactory) -> None:
    sup = supervisor(KEYS)
    with sup.http() as http:
        assert http.get("/health").status_code == 200
        assert http.get("/").status_code == 200  # the web UI's page is public
        missing = http.get("/v1/models")
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "authentication_error"
        assert http.get("/v1/models", headers=auth("nope")).status_code == 401
        assert http.get("/v1/models", headers={"x-api-key": USER_KEY}).status_code == 200
        listed = {m["id"] for m in http.get("/v1/models", headers=auth(USER_KEY)).json()["data"]}
        assert listed == {"fake", "fake-slow"}
        # A model outside the key's list does not exist for it.
        limited = http.post(
            "/v1/chat/completions", json={**CHAT, "model": "tiny"}, headers=auth(USER_KEY)
        )
        assert limited.status_code == 404
        assert (
            http.post(
                "/v1/chat/completions", json={**CHAT, "model": "fake"}, headers=auth(USER_KEY)
            ).status_code
            == 200
        )
        assert (
            http.post(
                "/v1/chat/completions",
                json={**CHAT, "model": "tiny", "max_tokens": 2},
                headers=auth(ADMIN_KEY),
            ).status_code
            == 200
        )
        for path in ("/admin/server", "/admin/analytics/summary"):
            assert http.get(path, headers=auth(USER_KEY)).status_code == 403
            assert http.get(path, headers=auth(ADMIN_KEY)).status_code == 200
            assert http.get(path).status_code == 401
        # The stream routes are guarded too.
        assert http.post("/v1/streams/lookup", json={"conversation_ids": ["x"]}).status_code == 401


def test_cli_keys_and_revocation(supervisor: SupervisorFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = corral("keys", "create", "cli-key", "--data-dir", str(data))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("crl-")
    # A second key keeps auth on once the first is revoked.
    assert corral("keys", "create", "other", "--data-dir", str(data)).returncode == 0
    listing = corral("keys", "list", "--data-dir", str(data))
    assert "cli-key" in listing.stdout
    assert key not in listing.stdout  # shown once, at creation only
    sup = supervisor(data_dir=data)
    with sup.http() as http:
        assert http.get("/v1/models").status_code == 401  # a key exists, so auth is on
        assert http.get("/v1/models", headers=auth(key)).status_code == 200
        assert corral("keys", "revoke", "cli-key", "--data-dir", str(data)).returncode == 0
        wait_until(
            lambda: http.get("/v1/models", headers=auth(key)).status_code == 401, 10, "revocation"
        )
    db = (
        (data / "corral.db").read_bytes() + (data / "corral.db-wal").read_bytes()
        if (data / "corral.db-wal").exists()
        else (data / "corral.db").read_bytes()
    )
    assert key.encode() not in db


def test_refuses_public_address_without_keys(tmp_path: Path) -> None:
    refused = corral("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path))
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in refused.stderr


def test_insecure_flag_overrides_with_a_warning(tmp_path: Path) -> None:
    sup = Supervisor(
        data_dir=tmp_path / "d",
        models_dir=tmp_path / "m",
        extra_args=["--host", "0.0.0.0", "--insecure-no-auth"],
    )
    sup.start()
    try:
        assert "with no authentication" in sup.log_text()
    finally:
        assert sup.terminate() == 0


def test_login_logout_rate_limit_and_expiry(supervisor: SupervisorFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = corral(
        "users", "add", "bob", "--password-stdin", "--data-dir", str(data), stdin="correct horse\n"
    )
    assert added.returncode == 0, added.stderr
    sup = supervisor("login_max_failures_per_user = 3\nsession_lifetime = 2\n", data_dir=data)
    with sup.http() as http:
        assert http.get("/api/ui-config").json()["auth_required"] is True
        ok = http.post("/api/login", json={"username": "bob", "password": "correct horse"})
        assert ok.status_code == 200
        token = ok.json()["token"]
        assert ok.json()["user"] == {"name": "bob", "admin": False}
        assert http.get("/api/me", headers=auth(token)).json()["name"] == "bob"
        assert http.get("/v1/models", headers=auth(token)).status_code == 200
        assert http.get("/admin/server", headers=auth(token)).status_code == 403
        assert http.post("/api/logout", headers=auth(token)).status_code == 204
        assert http.get("/v1/models", headers=auth(token)).status_code == 401
        # Expiry: a session lives session_lifetime seconds.
        short = http.post(
            "/api/login", json={"username": "bob", "password": "correct horse"}
        ).json()["token"]
        assert http.get("/v1/models", headers=auth(short)).status_code == 200
        wait_until(
            lambda: http.get("/v1/models", headers=auth(short)).status_code == 401,
            10,
            "session expiry",
        )
        # Rate limit: three failures, then 429 even for the right password.
        for _ in range(3):
            assert (
                http.post("/api/login", json={"username": "bob", "password": "wrong"}).status_code
                == 401
            )
        limited = http.post("/api/login", json={"username": "bob", "password": "correct horse"})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0
    assert "correct horse" not in sup.log_text()


def test_analytics_rows_geoip_and_trusted_proxies(
    supervisor: SupervisorFactory, tmp_path: Path
) -> None:
    mmdb = tmp_path / "countries.mmdb"
    build_country_mmdb(mmdb, {"1.1.1.0/24": "JP", "8.8.8.0/24": "BR"})
    sup = supervisor(f'geoip_database = "{mmdb}"\n' + KEYS)
    with sup.http() as http:
        chat = http.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "fake"},
            headers={
                **auth(USER_KEY),
                "X-Forwarded-For": "1.1.1.7",
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            },
        )
        assert chat.status_code == 200
        http.get("/v1/models", headers={**auth(USER_KEY), "X-Forwarded-For": "8.8.8.9"})
        http.get("/v1/models?api_key=" + USER_KEY, headers=auth(USER_KEY))
        wait_until(
            lambda: any(e["action"] == "chat.completions" for e in events(http)), 15, "the chat row"
        )
        row = next(e for e in events(http) if e["action"] == "chat.completions")
        assert row["client_ip"] == "1.1.1.7"
        assert row["country"] == "JP"
        assert row["principal"] == "app"
        assert row["route_group"] == "openai"
        assert row["model"] == "fake"
        assert row["status"] == 200
        assert row["prompt_tokens"] == 1
        assert row["completion_tokens"] == 8
        assert row["ttft_ms"] is not None
        assert row["browser"] is not None
        assert "Chrome" in str(row["browser"])
        # Filters stack.
        wait_until(lambda: len(events(http, country="BR")) == 1, 15, "the BR row")
        assert {e["country"] for e in events(http, country="JP")} == {"JP"}
        assert all(e["model"] == "fake" for e in events(http, model="fake"))
        assert events(http, country="JP", group="admin") == []
        assert all(e["principal"] == "app" for e in events(http, user="app"))
        public = events(http, hide_private="true")
        assert public
        assert all(e["client_ip"] not in ("127.0.0.1", None) for e in public)
        totals = summary(http)
        assert totals["totals"]["requests"] >= 3  # type: ignore[index]
        assert any(c["key"] == "JP" for c in totals["per_country"])  # type: ignore[attr-defined,union-attr]
        csv = http.get(
            "/admin/analytics/export.csv", params={"country": "JP"}, headers=auth(ADMIN_KEY)
        )
        assert csv.status_code == 200
        lines = csv.text.strip().splitlines()
        assert "client_ip" in lines[0]
        assert len(lines) == 2
        assert "1.1.1.7" in lines[1]
    # No secret anywhere: not in the database, not in the logs.
    assert sup.terminate() == 0
    assert sup.config is not None
    data = b"".join(p.read_bytes() for p in sup.config.parent.glob("corral-*.db*"))
    assert data
    assert USER_KEY.encode() not in data
    assert ADMIN_KEY.encode() not in data
    assert USER_KEY not in sup.log_text()


def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(
    supervisor: SupervisorFactory,
) -> None:
    sup = supervisor('trusted_proxies = ["10.0.0.0/8"]\n')
    with sup.http() as http:
        http.get("/v1/models", headers={"X-Forwarded-For": "203.0.113.7"})
        wait_until(lambda: any(e["path"] == "/v1/models" for e in events(http)), 15, "the row")
        row = next(e for e in events(http) if e["path"] == "/v1/models")
        assert row["client_ip"] == "127.0.0.1"
        assert row["country"] is None


def test_metrics_counters_move(supervisor: SupervisorFactory) -> None:
    sup = supervisor(KEYS)

    def counter(text: str, pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)", text)
        return float(match.group(1)) if match else 0.0

    with sup.http() as http:
        metric = r'corral_requests_total\{action="chat.completions",group="openai",status="200"\}'
        tokens = r'corral_completion_tokens_total\{model="fake"\}'
        before = http.get("/metrics").text  # loopback may scrape without a key
        http.post("/v1/chat/completions", json={**CHAT, "model": "fake"}, headers=auth(USER_KEY))
        after = http.get("/metrics", headers=auth(ADMIN_KEY)).text
        assert counter(after, metric) == counter(before, metric) + 1
        assert counter(after, tokens) == counter(before, tokens) + 8
        for name in (
            "corral_models_loaded 1.0",
            "corral_queue_depth",
            "corral_stream_sessions",
            "corral_analytics_rows_dropped_total",
            "corral_time_to_first_token_seconds_bucket",
        ):
            assert name in after


def test_stream_sessions_belong_to_their_key(supervisor: SupervisorFactory) -> None:
    sup = supervisor(KEYS)
    with sup.http() as http:
        body = {**CHAT, "model": "fake", "stream": True}
        created = http.post(
            "/v1/chat/completions",
            json=body,
            headers={**auth(USER_KEY), "X-Conversation-Id": "mine"},
        )
        assert created.status_code == 200
        assert http.get("/v1/stream/mine", headers=auth(USER_KEY)).status_code == 200
        assert http.get("/v1/stream/mine", headers=auth(ADMIN_KEY)).status_code == 404
        assert http.post(
            "/v1/streams/lookup", json={"conversation_ids": ["mine"]}, headers=auth(ADMIN_KEY)
        ).json() == {"data": []}
        taken = http.post(
            "/v1/chat/completions",
            json=body,
            headers={**auth(ADMIN_KEY), "X-Conversation-Id": "mine"},
        )
        assert taken.status_code == 404  # as for the other routes: it does not say the id exists


def test_public_server_stays_closed_when_its_last_key_is_revoked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = corral("keys", "create", "only", "--data-dir", str(data)).stdout.strip()
    sup = Supervisor(data_dir=data, models_dir=tmp_path / "m", extra_args=["--host", "0.0.0.0"])
    sup.start()
    try:
        with sup.http() as http:
            assert http.get("/v1/models", headers=auth(key)).status_code == 200
            assert corral("keys", "revoke", "only", "--data-dir", str(data)).returncode == 0
            wait_until(
                lambda: http.get("/v1/models", headers=auth(key)).status_code == 401,
                10,
                "revocation",
            )
            assert http.get("/v1/models").status_code == 401  # not opened to everyone
    finally:
        assert sup.terminate() == 0
