"""Security tier: cross-site and DNS-rebinding requests, in-process against the real app.

Every state-changing route is probed with a foreign ``Origin`` (and with a plain-text body, as
an HTML form or ``fetch(..., {mode: "no-cors"})`` would send it), with and without keys; reads
with a rebinding ``Host`` are refused; the same-origin web UI, the ``openai`` client (no
``Origin``) and a reverse proxy's forwarded origin keep working.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.settings import ApiKeyConfig
from tests.support.inproc import JSON, inproc_settings, state_changing_routes

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
EVIL = "http://evil.example"
ADMIN_KEY = "sk-test-admin-key-0123456789"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def test_every_state_changing_route_refuses_a_foreign_origin(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    app = create_app(inproc_settings(tmp_path))
    client = await aiohttp_client(app)
    routes = state_changing_routes(app)
    assert ("POST", "/admin/models/delete") in routes
    assert len(routes) >= 12
    for method, path in routes:
        for headers in ({"Content-Type": "text/plain"}, JSON):
            response = await client.request(
                method, path, data=b"{}", headers={**headers, "Origin": EVIL}
            )
            body = await response.json()
            assert response.status == 403, (method, path, body)
            assert body["error"]["code"] == "origin_not_allowed"
    # Also "null" (sandboxed frames, file:// pages) and a cross-site fetch without Origin.
    for headers in ({"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert response.status == 403


async def test_a_cross_site_delete_leaves_the_model_file(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    settings = inproc_settings(tmp_path)
    model = settings.resolved_models_dir / "victim.gguf"
    model.write_bytes(b"GGUF")
    client = await aiohttp_client(create_app(settings))
    response = await client.post(
        "/admin/models/delete",
        data=b'{"model": "victim"}',
        headers={"Content-Type": "text/plain", "Origin": EVIL},
    )
    assert response.status == 403
    assert model.exists()
    # Without Origin (curl), a text/plain body is still not JSON: 415, nothing deleted.
    response = await client.post(
        "/admin/models/delete", data=b'{"model": "victim"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert (await response.json())["error"]["code"] == "unsupported_media_type"
    assert model.exists()


async def test_json_routes_need_a_json_content_type(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    app = create_app(inproc_settings(tmp_path))
    client = await aiohttp_client(app)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = await client.post(
            "/api/conversations", data=b"{}", headers={"Content-Type": content_type}
        )
        assert response.status == 415, content_type
    response = await client.post("/api/conversations", data=b"{}")  # no type at all
    assert response.status == 415
    response = await client.post(
        "/api/conversations",
        data=b"{}",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 201


@pytest.mark.parametrize(
    "path", ["/api/conversations", "/admin/analytics/export.csv", "/v1/models", "/"]
)
async def test_dns_rebinding_host_is_refused(
    aiohttp_client: ClientFactory, tmp_path: Path, path: str
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)))
    response = await client.get(path, headers={"Host": "rebind.evil.example:8080"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "host_not_allowed"
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080", "app.localhost", "10.1.2.3:8080"):
        response = await client.get(path, headers={"Host": host})
        assert response.status == 200, host


async def test_allowed_hosts_admit_a_configured_name(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    settings = inproc_settings(tmp_path, allowed_hosts=["llm.example.org"])
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/v1/models", headers={"Host": "llm.example.org"})).status == 200
    assert (await client.get("/v1/models", headers={"Host": "LLM.example.org."})).status == 200
    assert (await client.get("/v1/models", headers={"Host": "other.example.org"})).status == 403
    # /health answers monitors under any name; it tells nothing.
    assert (await client.get("/health", headers={"Host": "other.example.org"})).status == 200


async def test_same_origin_ui_and_sdk_clients_work(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)))
    own = str(client.make_url("")).rstrip("/")
    response = await client.post("/v1/chat/completions", json=CHAT, headers={"Origin": own})
    assert response.status == 200
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)
    async with sdk:
        done = await sdk.chat.completions.create(model="fake", messages=CHAT["messages"])  # type: ignore[arg-type]
    assert done.choices[0].message.content


async def test_the_forwarded_origin_of_a_trusted_proxy_is_the_own_origin(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)))
    proxied = {"X-Forwarded-Host": "corral.example.test", "X-Forwarded-Proto": "https"}
    ok = await client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={**proxied, "Origin": "https://corral.example.test"},
    )
    assert ok.status == 200
    for origin in ("http://corral.example.test", "https://corral.example.test:8443", EVIL):
        refused = await client.post(
            "/v1/chat/completions", json=CHAT, headers={**proxied, "Origin": origin}
        )
        assert refused.status == 403, origin


async def test_with_keys_a_foreign_origin_is_refused_even_with_a_valid_key(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    key = ApiKeyConfig(name="ops", key=ADMIN_KEY, admin=True)  # type: ignore[arg-type]
    client = await aiohttp_client(create_app(inproc_settings(tmp_path, api_keys=[key])))
    bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}
    response = await client.post(
        "/v1/chat/completions", json=CHAT, headers={**bearer, "Origin": EVIL}
    )
    assert response.status == 403
    response = await client.get("/v1/models", headers={**bearer, "Host": "rebind.evil.example"})
    assert response.status == 403
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=bearer)).status == 200


async def test_cors_origins_are_allowed_origins(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    settings = inproc_settings(tmp_path, cors_origins=["https://app.example.org"])
    client = await aiohttp_client(create_app(settings))
    headers = {"Origin": "https://app.example.org"}
    response = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
