"""Error rendering, body parsing and CORS, against the app in process."""

from __future__ import annotations

import pytest

from tests.supervisor.conftest import AppClient, assert_openai_error

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


async def test_a_chat_completion_through_a_fake_child(app_client: AppClient) -> None:
    client = await app_client()
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status == 200
    body = await response.json()
    assert body["object"] == "chat.completion"
    assert body["usage"]["completion_tokens"] == 4
    assert body["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{", "invalid_json"),
        (b"[]", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
async def test_bodies_that_are_not_json_objects_are_400s(
    app_client: AppClient, raw: bytes, code: str
) -> None:
    client = await app_client()
    response = await client.post(
        "/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert_openai_error(await response.json(), code=code)


async def test_a_field_of_the_wrong_type_is_a_400_naming_it(app_client: AppClient) -> None:
    client = await app_client()
    response = await client.post("/v1/chat/completions", json={**CHAT, "temperature": "hot"})
    assert response.status == 400
    assert_openai_error(await response.json(), param="temperature")


async def test_an_unknown_model_is_a_404_naming_the_model(app_client: AppClient) -> None:
    client = await app_client()
    response = await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    assert response.status == 404
    assert_openai_error(await response.json(), param="model")


async def test_a_body_over_the_limit_is_a_413(app_client: AppClient) -> None:
    client = await app_client(max_body_bytes=2048)
    huge = {**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}
    response = await client.post("/v1/chat/completions", json=huge)
    assert response.status == 413
    assert_openai_error(await response.json())


async def test_an_unknown_route_is_a_404_in_the_openai_shape(app_client: AppClient) -> None:
    client = await app_client()
    response = await client.get("/v1/nothing-here")
    assert response.status == 404
    assert_openai_error(await response.json())


async def test_cors_is_off_unless_origins_are_configured(app_client: AppClient) -> None:
    client = await app_client()
    response = await client.get("/v1/models", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_preflight_for_an_allowed_origin(app_client: AppClient) -> None:
    client = await app_client(cors_origins=["https://app.example"])
    response = await client.options(
        "/v1/chat/completions",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    other = await client.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
