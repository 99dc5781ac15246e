"""Bad input is a 400 in OpenAI's shape, never a 5xx (issue 16, Medium 5 and 7), in-process."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import loads_strict
from corral.supervisor.settings import Settings
from tests.support.inproc import JSON, inproc_settings, state_changing_routes

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Path) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(inproc_settings(tmp_path)))


def as_file(body: Any) -> io.BytesIO:
    return io.BytesIO(json.dumps(body).encode())  # large bodies, as aiohttp wants them


async def error_of(response: Any, status: int = 400) -> dict[str, Any]:
    body = await response.json()
    assert response.status == status, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


# Routes whose body is a file, not JSON: a PDF to read, audio to transcribe.
BINARY_BODIES = {"/api/attachments/pdf-text", "/v1/audio/transcriptions", "/v1/audio/translations"}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
async def test_non_finite_numbers_are_refused_on_every_json_route(
    client: TestClient[Any, Any], number: str
) -> None:
    for method, path in state_changing_routes(client.app):
        if path in BINARY_BODIES:
            continue
        raw = f'{{"keep_alive": {number}, "temperature": {number}, "model": "fake"}}'
        response = await client.request(method, path, data=raw.encode(), headers=JSON)
        if response.status in (204, 404, 405):
            continue  # routes that read no body (logout, stop, delete)
        error = await error_of(response)
        if error["param"] == "conv_id":
            continue  # DELETE /v1/stream?conv_id=: reads no body, and was given no id
        assert error["code"] == "invalid_json", (method, path)


async def test_keep_alive_that_overflows_is_refused_and_nothing_emits_nan(
    client: TestClient[Any, Any],
) -> None:
    for keep_alive in ["9" * 400 + "s", 1e300, "1e5h"]:
        body = {"messages": USER, "keep_alive": keep_alive}
        response = await client.post("/v1/chat/completions", json=body)
        assert (await error_of(response))["param"] == "keep_alive", keep_alive
    ok = await client.post("/v1/chat/completions", json={"messages": USER, "keep_alive": "5m"})
    assert ok.status == 200
    for path in ("/admin/models", "/v1/models"):
        loads_strict(await (await client.get(path)).read())  # strict JSON: no bare NaN


def test_settings_refuse_non_finite_numbers() -> None:
    for field in ("keep_alive", "shutdown_grace", "stream_ttl"):
        with pytest.raises(ValueError, match="finite"):
            Settings(**{field: float("nan")})


async def test_json_nested_100k_deep_is_a_400_on_every_route(client: TestClient[Any, Any]) -> None:
    deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for method, path in state_changing_routes(client.app):
        response = await client.request(method, path, data=deep, headers=JSON)
        assert response.status < 500, (method, path)
        if response.status not in (204, 404):
            await error_of(response)


async def test_lone_surrogates_are_a_400(client: TestClient[Any, Any]) -> None:
    cases = [
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}'),
        ("/v1/completions", b'{"prompt": "\\udfff"}'),
        ("/api/conversations", b'{"messages": [{"role": "user", "content": "\\ud83d"}]}'),
    ]
    for path, raw in cases:
        response = await client.post(path, data=raw, headers=JSON)
        assert (await error_of(response))["code"] == "invalid_json", path
    # A surrogate pair is one character, and fine.
    pair = b'{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    assert (await client.post("/v1/chat/completions", data=pair, headers=JSON)).status == 200


async def test_a_prompt_over_the_frame_limit_is_a_400(client: TestClient[Any, Any]) -> None:
    big = "word " * 300_000  # 1.5 MB: under the 8 MiB body limit, over the 1 MiB frame
    response = await client.post("/v1/completions", data=as_file({"prompt": big}), headers=JSON)
    assert (await error_of(response))["code"] == "prompt_too_large"
    body = {"messages": [{"role": "user", "content": big}]}
    response = await client.post("/v1/chat/completions", data=as_file(body), headers=JSON)
    assert (await error_of(response))["param"] == "messages"


@pytest.mark.parametrize("key", ["abc", "\u00b2", "-1", "2147483648", "1e3", " 7", "99999999999"])
async def test_logit_bias_keys_must_be_int32_token_ids(
    client: TestClient[Any, Any], key: str
) -> None:
    body = {"messages": USER, "logit_bias": {key: 1}}
    response = await client.post("/v1/chat/completions", json=body)
    assert (await error_of(response))["param"] == "logit_bias"


@pytest.mark.parametrize("value", ["abc", 1.5, 0, -3, [1]])
async def test_completions_check_max_completion_tokens(
    client: TestClient[Any, Any], value: Any
) -> None:
    body = {"prompt": "go", "max_completion_tokens": value}
    response = await client.post("/v1/completions", json=body)
    assert (await error_of(response))["param"] == "max_completion_tokens"


async def test_completions_honour_max_completion_tokens(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/v1/completions", json={"prompt": "go", "max_completion_tokens": 3}
    )
    done = await response.json()
    assert done["choices"][0]["finish_reason"] == "length"
    assert done["usage"]["completion_tokens"] == 3


async def test_an_empty_completion_prompt_is_a_400(client: TestClient[Any, Any]) -> None:
    for prompt in ("", [""]):
        response = await client.post("/v1/completions", json={"prompt": prompt})
        assert (await error_of(response))["param"].startswith("prompt")


@pytest.mark.parametrize("offset", ["1e20", str(10**20), "-1", "nan"])
async def test_analytics_offsets_out_of_range_are_a_400(
    client: TestClient[Any, Any], offset: str
) -> None:
    response = await client.get("/admin/analytics/summary", params={"offset": offset})
    await error_of(response)


def test_the_loader_refuses_what_python_json_accepts() -> None:
    for raw in (b"NaN", b"[Infinity]", b'{"a": 1e400}', b'"\\udc80"', b"[" * 50_000):
        with pytest.raises(BadRequest, match=r"JSON|nested|UTF-8"):
            loads_strict(raw)
    assert loads_strict(b'{"a": [1.5, "\\u00e9"]}') == {"a": [1.5, "\u00e9"]}
    assert json.loads(b"NaN") != json.loads(b"NaN")  # what it used to let through
