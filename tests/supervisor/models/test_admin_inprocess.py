"""The admin views of the model shelf and the OpenAI model list render one status."""

from __future__ import annotations

from typing import Any

from tests.supervisor.conftest import AppClient, assert_openai_error


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


async def test_load_then_unload_shows_in_both_views(app_client: AppClient) -> None:
    client = await app_client()
    shelf = by_id((await (await client.get("/admin/models")).json())["data"])
    assert shelf["fake"]["state"] == "unloaded"
    assert shelf["fake"]["backend"] == "fake"
    loaded = await client.post("/admin/models/load", json={"model": "fake"})
    assert loaded.status == 202
    chat = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert (await client.post("/v1/chat/completions", json=chat)).status == 200
    admin_item = by_id((await (await client.get("/admin/models")).json())["data"])["fake"]
    openai_item = by_id((await (await client.get("/v1/models")).json())["data"])["fake"]
    assert admin_item["state"] == openai_item["state"] == "loaded"
    assert admin_item["pid"] is not None
    assert openai_item["default"] is True
    unloaded = await client.post("/admin/models/unload", json={"model": "fake"})
    assert unloaded.status == 200
    assert (await unloaded.json())["state"] in ("unloading", "unloaded")


async def test_admin_refusals_are_openai_errors(app_client: AppClient) -> None:
    client = await app_client()
    missing = await client.post("/admin/models/load", json={"model": "nope"})
    assert missing.status == 404
    assert_openai_error(await missing.json(), param="model")
    no_body = await client.post("/admin/models/load", json={})
    assert no_body.status == 400
    assert_openai_error(await no_body.json(), param="model")
