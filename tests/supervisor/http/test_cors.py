"""CORS for browser SDKs: the OpenAI and Anthropic JavaScript SDKs' preflights pass, streamed
answers carry the CORS headers, and caches are told that answers depend on the Origin."""

from __future__ import annotations

from aiohttp import ClientResponse

from tests.supervisor.conftest import AppClient

APP = "https://app.example"
CHAT = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

# What openai-node (and anthropic-sdk-typescript) put in Access-Control-Request-Headers from a
# browser: their own headers plus the x-stainless-* family, lower-cased and sorted.
OPENAI_JS = (
    "authorization,content-type,x-stainless-arch,x-stainless-helper-method,x-stainless-lang,"
    "x-stainless-os,x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,"
    "x-stainless-runtime-version,x-stainless-timeout"
)
ANTHROPIC_JS = (
    "anthropic-beta,anthropic-dangerous-direct-browser-access,anthropic-version,content-type,"
    "x-api-key,x-stainless-lang,x-stainless-os"
)


def _listed(value: str) -> set[str]:
    return {name.strip().lower() for name in value.split(",") if name.strip()}


async def _preflight(client: AppClient, requested: str, origin: str = APP) -> ClientResponse:
    app = await client(cors_origins=[APP])
    return await app.options(
        "/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": requested,
        },
    )


async def test_the_openai_js_sdk_preflight_allows_all_its_headers(app_client: AppClient) -> None:
    response = await _preflight(app_client, OPENAI_JS)
    assert response.status == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == APP
    assert _listed(headers["Access-Control-Allow-Headers"]) == _listed(OPENAI_JS)
    assert "POST" in headers["Access-Control-Allow-Methods"]
    vary = _listed(headers["Vary"])
    assert {"origin", "access-control-request-method", "access-control-request-headers"} <= vary


async def test_the_anthropic_js_sdk_preflight_allows_all_its_headers(
    app_client: AppClient,
) -> None:
    response = await _preflight(app_client, ANTHROPIC_JS)
    headers = response.headers
    assert _listed(headers["Access-Control-Allow-Headers"]) == _listed(ANTHROPIC_JS)


async def test_a_header_outside_the_allowed_set_is_not_reflected(app_client: AppClient) -> None:
    response = await _preflight(
        app_client, "content-type, x-evil, cookie, x-stainless-a b, x-stainless-new-thing"
    )
    allowed = _listed(response.headers["Access-Control-Allow-Headers"])
    assert allowed == {"content-type", "x-stainless-new-thing"}


async def test_a_preflight_from_another_origin_gets_no_cors_headers(
    app_client: AppClient,
) -> None:
    response = await _preflight(app_client, OPENAI_JS, origin="https://evil.example")
    headers = response.headers
    assert "Access-Control-Allow-Origin" not in headers
    assert "Access-Control-Allow-Headers" not in headers
    assert "origin" in _listed(headers["Vary"])


async def test_a_streamed_answer_carries_the_cors_headers(app_client: AppClient) -> None:
    client = await app_client(cors_origins=[APP])
    response = await client.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"Origin": APP}
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "X-Conversation-Id" in response.headers["Access-Control-Expose-Headers"]
    assert "origin" in _listed(response.headers["Vary"])
    assert (await response.text()).rstrip().endswith("data: [DONE]")


async def test_answers_vary_on_origin_whenever_cors_is_on(app_client: AppClient) -> None:
    client = await app_client(cors_origins=[APP])
    response = await client.get("/v1/models")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "origin" in _listed(response.headers["Vary"])
    plain = await app_client()
    assert "Vary" not in (await plain.get("/v1/models")).headers
