"""Fuzz tier: hypothesis over every JSON route and the headers the server reads, in-process.

One real app (every middleware, fake children, an empty fake hub: a 502 for an unreachable
hub would be the truth, not a defect) serves on a thread of its own; hypothesis sends
it bodies built from each route's own field names with values of every JSON type (non-finite
numbers, huge integers, lone surrogates, deep nesting), random JSON, raw bytes, and random
header values (bytes that are not UTF-8 included). Every answer must be below 500, and every
error must have OpenAI's shape; the server must be healthy after. The counts are printed
(``pytest -s``) and asserted: requests sent, 5xx seen (zero).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.supervisor.app import create_app
from corral.supervisor.settings import ModelPreset
from tests.support.fake_hub import FakeHub
from tests.support.inproc import inproc_settings

# Per test below (four of them); CORRAL_FUZZ_EXAMPLES=750 makes the 3,000-request run.
EXAMPLES = int(os.environ.get("CORRAL_FUZZ_EXAMPLES", "100"))
FIELDS: dict[str, list[str]] = {
    "/v1/chat/completions": [
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "stop",
        "n",
        "logit_bias",
        "keep_alive",
        "user",
    ],
    "/v1/completions": [
        "model",
        "prompt",
        "stream",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "echo",
        "suffix",
        "logprobs",
        "best_of",
        "logit_bias",
        "keep_alive",
        "stop",
        "seed",
    ],
    "/v1/streams/lookup": ["conversation_ids"],
    "/api/conversations": [
        "id",
        "title",
        "pinned",
        "model",
        "mode",
        "system_prompt",
        "settings",
        "messages",
    ],
    "/api/conversations/fz": ["title", "pinned", "model", "mode", "settings", "messages"],
    "/api/login": ["username", "password"],
    "/admin/models/pull": ["repo", "revision", "files", "include"],
    "/admin/models/load": ["model"],
    "/admin/models/unload": ["model"],
    "/admin/models/delete": ["model", "force"],
    "/admin/models/cancel": ["job"],
    "/admin/downloads/resume": ["job"],
}
GET_ROUTES = {
    "/admin/analytics/summary": [
        "since",
        "until",
        "limit",
        "offset",
        "country",
        "group",
        "user",
        "model",
        "hide_private",
    ],
    "/admin/analytics/export.csv": ["since", "until", "limit", "offset", "model"],
    "/v1/stream/fz": ["from"],
    "/v1/models/fake": [],
    "/api/conversations/fz": [],
}
HEADERS = [
    "Authorization",
    "x-api-key",
    "X-Conversation-Id",
    "X-Forwarded-For",
    "User-Agent",
    "Content-Type",
    "Last-Event-ID",
    "Origin",
    "Sec-Fetch-Site",
    "Host",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
]
SEEN: Counter[str] = Counter()

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 1e20, 0.5, 32769]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text, st.just("fake"))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(any_text, st.sampled_from(["role", "content", "x"])), inner, max_size=4
        ),
    ),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "assistant", "tool", "bot"]),
            "content": json_values,
        }
    ),
    max_size=3,
)


def field_value(name: str) -> st.SearchStrategy[Any]:
    if name == "messages":
        return st.one_of(messages, json_values)
    if name == "model":
        return st.one_of(st.sampled_from(["fake", "default", "nope"]), json_values)
    return json_values


def route_body(path: str) -> st.SearchStrategy[bytes]:
    fields = FIELDS[path]
    structured = st.fixed_dictionaries(
        {}, optional={name: field_value(name) for name in fields}
    ).map(lambda d: json.dumps(d, allow_nan=True).encode())
    deep = st.integers(min_value=1, max_value=200_000).map(
        lambda n: b'{"messages": ' + b"[" * n + b"]" * n + b"}"
    )
    return st.one_of(
        structured,
        structured,
        json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
        st.binary(max_size=64),
        deep,
    )


header_values = st.one_of(
    # Bytes an HTTP client may send in a header value: no controls, but anything above 0x7f.
    # (h11 also refuses spaces at either end.)
    st.binary(max_size=24).filter(
        lambda b: all(c >= 0x20 and c != 0x7F for c in b) and b == b.strip(b" \t")
    ),
    st.sampled_from(
        [b"Bearer \xff", b"application/json", b"text/plain", b"http://evil.example", b"c-1"]
    ),
)
headers = st.dictionaries(st.sampled_from(HEADERS), header_values, max_size=4)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a loop in a thread of its own, for the synchronous hypothesis tests."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    hub = FakeHub().start()  # an empty hub: a pull of a well-formed repo id is its 404
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", hub.url)
        app = create_app(inproc_settings(tmp, models={"fake": ModelPreset(backend="fake")}))
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, handler_cancellation=True)
        ready = threading.Event()
        port: list[int] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert ready.wait(60)
        yield f"http://127.0.0.1:{port[0]}"
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        loop.close()
    hub.stop()
    print(f"\nfuzz: {sum(SEEN.values())} requests; by status class: {dict(SEEN)}")


def check(response: httpx.Response, what: str) -> None:
    SEEN[f"{response.status_code // 100}xx"] += 1
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith(
        "application/json"
    ):
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, what
        assert isinstance(error["message"], str)


def send(base_url: str, method: str, path: str, body: bytes, extra: dict[str, bytes]) -> None:
    sent = {"Content-Type": b"application/json", **extra}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.request(method, path, content=body, headers=sent)
        check(response, f"{method} {path} {body[:200]!r} {extra!r}")


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


@FUZZ
@given(data=st.data())
def test_post_routes_never_answer_5xx(base_url: str, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(FIELDS)))
    method = "PATCH" if path == "/api/conversations/fz" else "POST"
    send(base_url, method, path, data.draw(route_body(path)), data.draw(headers))


@FUZZ
@given(data=st.data())
def test_openai_routes_never_answer_5xx(base_url: str, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
    send(base_url, "POST", path, data.draw(route_body(path)), data.draw(headers))


@FUZZ
@given(data=st.data())
def test_get_routes_and_headers_never_answer_5xx(base_url: str, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(GET_ROUTES)))
    params = data.draw(
        st.dictionaries(st.sampled_from(GET_ROUTES[path] or ["x"]), any_text, max_size=4)
    )
    safe = {k: v.encode("utf-8", "replace").decode() for k, v in params.items()}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.get(path, params=safe, headers=data.draw(headers))
        check(response, f"GET {path} {safe!r}")


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    path=st.sampled_from(["/v1/stream/fz", "/api/logout", "/api/me", "/health", "/nope"]),
    extra=headers,
)
def test_bodyless_routes_never_answer_5xx(
    base_url: str, method: str, path: str, extra: dict[str, bytes]
) -> None:
    send(base_url, method, path, b"", extra)


def test_the_server_is_healthy_after_the_fuzzing(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        assert client.get("/health").json()["status"] == "ok"
        body = {"messages": [{"role": "user", "content": "still there?"}]}
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert SEEN["5xx"] == 0
    assert sum(SEEN.values()) >= 4 * EXAMPLES
