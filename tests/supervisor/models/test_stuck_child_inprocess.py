"""A child that stops answering (SIGSTOP) ends its requests with a clear error and is killed."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import psutil
import pytest

from corral.supervisor.appkeys import MANAGER
from tests.supervisor.conftest import AppClient, assert_openai_error

STUCK = {
    "stuck": {
        "backend": "fake",
        "args": ["--tokens-per-second", "50", "--reply-tokens", "100000"],
        "stall_timeout": 1.0,
        "first_token_timeout": 1.0,
    }
}
BODY: dict[str, Any] = {"model": "stuck", "messages": [{"role": "user", "content": "hi"}]}


async def _pid(client: Any) -> int:
    items = (await (await client.get("/admin/models")).json())["data"]
    return next(i["pid"] for i in items if i["id"] == "stuck")


async def _state(client: Any) -> dict[str, Any]:
    items = (await (await client.get("/admin/models")).json())["data"]
    return next(i for i in items if i["id"] == "stuck")


async def _until_failed(client: Any) -> None:
    manager = client.app[MANAGER]
    with manager.changes.subscribe() as changes:
        async with asyncio.timeout(10):
            while manager.status("stuck").state != "failed":
                await changes.get()


async def test_a_stream_from_a_stopped_child_ends_with_an_error_event(
    app_client: AppClient,
) -> None:
    client = await app_client(models=STUCK)
    response = await client.post("/v1/chat/completions", json={**BODY, "stream": True})
    assert response.status == 200
    assert (await response.content.readline()).startswith(b"data: ")  # streaming now
    pid = await _pid(client)
    os.kill(pid, signal.SIGSTOP)
    rest = await response.read()  # ends: no hang
    assert b"event: error" in rest or b'"error"' in rest
    assert b"model_stalled" in rest
    assert rest.endswith(b"data: [DONE]\n\n")
    await _until_failed(client)
    with pytest.raises(psutil.NoSuchProcess):  # killed, and reaped by the supervisor
        psutil.Process(pid)
    item = await _state(client)
    assert item["state"] == "failed"
    assert "stopped answering" in item["error"]
    # The next request starts a fresh child.
    again = await client.post("/v1/chat/completions", json={**BODY, "max_tokens": 3})
    assert again.status == 200


async def test_a_request_to_a_stopped_child_is_a_504_before_headers(
    app_client: AppClient,
) -> None:
    client = await app_client(models=STUCK)
    assert (await client.post("/admin/models/load", json={"model": "stuck"})).status == 202
    warm = await client.post("/v1/chat/completions", json={**BODY, "max_tokens": 2})
    assert warm.status == 200
    os.kill(await _pid(client), signal.SIGSTOP)
    response = await client.post("/v1/chat/completions", json={**BODY, "max_tokens": 2})
    assert response.status == 504
    assert_openai_error(await response.json(), code="model_stalled")
