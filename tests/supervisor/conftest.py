"""The in-process tier: the whole app under aiohttp's test client, with fake children.

Fast (milliseconds a request, no supervisor process), so every HTTP behaviour is tested here;
the end-to-end tier keeps to what needs processes, signals, Caddy and the browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from corral.supervisor.app import create_app
from corral.supervisor.settings import load_settings

FAKE = {
    "fake": {"backend": "fake"},
    "fake-slow": {
        "backend": "fake",
        "args": ["--tokens-per-second", "200", "--reply-tokens", "100000"],
    },
}

AppClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    """``await app_client(**settings)``: a client of a fresh app, fake models configured."""
    clients: list[TestClient[Any, Any]] = []

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("models", FAKE)
        overrides.setdefault("default_model", "fake")
        settings = load_settings(
            None, data_dir=tmp_path / f"data{len(clients)}", demo_model=False, **overrides
        )
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def assert_openai_error(body: Any, *, code: str | None = None, param: str | None = None) -> None:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
