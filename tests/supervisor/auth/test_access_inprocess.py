"""The access policy, against the app in process: open on loopback without keys, keys when
configured, admin routes for admin keys."""

from __future__ import annotations

from tests.supervisor.conftest import AppClient, assert_openai_error

KEYS = [
    {"name": "admin", "key": "sk-admin-0123456789abcdef", "admin": True},
    {"name": "user", "key": "sk-user-0123456789abcdef", "models": ["fake"]},
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_without_keys_loopback_callers_are_let_in(app_client: AppClient) -> None:
    client = await app_client()
    assert (await client.get("/v1/models")).status == 200
    assert (await client.get("/admin/models")).status == 200


async def test_keys_guard_the_api_and_the_admin_routes(app_client: AppClient) -> None:
    client = await app_client(api_keys=KEYS)
    missing = await client.get("/v1/models")
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert_openai_error(await missing.json())
    wrong = await client.get("/v1/models", headers=bearer("sk-wrong-0123456789abcdef"))
    assert wrong.status == 401
    assert (await client.get("/v1/models", headers=bearer(KEYS[1]["key"]))).status == 200
    forbidden = await client.get("/admin/models", headers=bearer(KEYS[1]["key"]))
    assert forbidden.status == 403
    assert_openai_error(await forbidden.json(), code="admin_required")
    assert (await client.get("/admin/models", headers=bearer(KEYS[0]["key"]))).status == 200
    assert (await client.get("/health")).status == 200  # probes need no key


async def test_a_model_limited_key_sees_only_its_models(app_client: AppClient) -> None:
    client = await app_client(api_keys=KEYS)
    listed = await (await client.get("/v1/models", headers=bearer(KEYS[1]["key"]))).json()
    assert [m["id"] for m in listed["data"]] == ["fake"]
    hidden = await client.get("/v1/models/fake-slow", headers=bearer(KEYS[1]["key"]))
    assert hidden.status == 404
