"""Remote models in process: the real app and a real remote child, against fake upstreams on
loopback whose answers the tests script (a second real Corral is in tests/e2e)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from corral.supervisor.appkeys import CATALOG, DOWNLOADS, MANAGER
from corral.supervisor.models.shelf import shelf_status
from corral.supervisor.settings import ModelPreset
from tests.supervisor.conftest import AppClient, assert_openai_error
from tests.support.fake_upstream import WORDS, FakeUpstream, serving
from tests.support.inproc import eventually

KEY = "sk-upstream-secret-4242"
CHAT = {"model": "far", "messages": [{"role": "user", "content": "hi"}]}


def _preset(*urls: str, **extra: Any) -> dict[str, Any]:
    preset: dict[str, Any] = {
        "backend": "remote",
        "url": urls[0],
        "replicas": list(urls[1:]),
        "model": "up-model",
        "api_key_env": "CORRAL_TEST_UPSTREAM_KEY",
        **extra,
    }
    return {"far": preset}


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def _content(events: list[str]) -> str:
    out = ""
    for event in events:
        if event == "[DONE]":
            continue
        for choice in json.loads(event).get("choices", []):
            out += choice.get("delta", {}).get("content") or ""
    return out


async def _state(client: Any) -> dict[str, Any]:
    items = (await (await client.get("/admin/models")).json())["data"]
    return next(i for i in items if i["id"] == "far")


async def _until_state(client: Any, wanted: str) -> None:
    app = client.app

    def reached() -> bool:
        return shelf_status(app[MANAGER], app[DOWNLOADS], "far").state == wanted

    await eventually(reached, seconds=30)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_TEST_UPSTREAM_KEY", KEY)


async def test_a_streamed_chat_goes_upstream_with_its_key_and_comes_back(
    app_client: AppClient,
) -> None:
    async with serving(FakeUpstream()) as upstream:
        client = await app_client(models=_preset(upstream.url))
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "top_k": 7}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status == 200
        events = _events(await response.text())
        assert _content(events) == "".join(WORDS)
        assert events[-1] == "[DONE]"
        usage = json.loads(events[-2])["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (11, len(WORDS))
        sent = upstream.generations[-1]
        assert sent["path"] == "/v1/chat/completions"
        assert sent["body"]["model"] == "up-model"
        assert sent["body"]["top_k"] == 7
        assert sent["body"]["messages"] == [{"role": "user", "content": "hi"}]
        assert set(upstream.auth) == {f"Bearer {KEY}"}
        assert (await _state(client))["state"] == "reachable"
        listed = (await (await client.get("/v1/models/far")).json())["state"]
        assert listed == "reachable"
        metrics = await (await client.get("/metrics")).text()
        assert f'corral_upstream_up{{model="far",upstream="{upstream.url}"}} 1.0' in metrics
        assert 'corral_completion_tokens_total{model="far"} 5.0' in metrics


async def test_completions_and_embeddings_go_upstream(app_client: AppClient) -> None:
    async with serving(FakeUpstream()) as upstream:
        serves = ["chat", "completion", "embeddings"]
        client = await app_client(models=_preset(upstream.url, serves=serves))
        response = await client.post(
            "/v1/completions", json={"model": "far", "prompt": "Say", "max_tokens": 5}
        )
        assert response.status == 200, await response.text()
        answer = await response.json()
        assert answer["choices"][0]["text"] == "".join(WORDS)
        assert upstream.generations[-1]["body"]["prompt"] == "Say"
        assert upstream.generations[-1]["body"]["max_tokens"] == 5
        response = await client.post("/v1/embeddings", json={"model": "far", "input": ["a", "b"]})
        assert response.status == 200, await response.text()
        data = (await response.json())["data"]
        assert [row["embedding"] for row in data] == [[0.0, 0.5, -1.0], [1.0, 0.5, -1.0]]


async def test_a_5xx_before_the_first_byte_is_retried_on_another_replica(
    app_client: AppClient,
) -> None:
    async with (
        serving(FakeUpstream(mode="error_500")) as broken,
        serving(FakeUpstream()) as good,
    ):
        client = await app_client(models=_preset(broken.url, good.url))
        await _until_state(client, "degraded")  # the start-up probe found the first down
        broken.requests.clear()
        # With the broken replica ejected, requests go to the good one; once every healthy
        # replica has been tried, an ejected one is tried too, so both answers are retried.
        for _ in range(3):
            response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
            assert response.status == 200
            assert _content(_events(await response.text())) == "".join(WORDS)
        assert len(good.generations) == 3
        state = await _state(client)
        assert state["state"] == "degraded"
        assert "500" in state["error"]
        assert {u["healthy"] for u in state["upstreams"]} == {True, False}


async def test_a_5xx_on_the_only_replica_reaches_the_client_as_a_502(
    app_client: AppClient,
) -> None:
    async with serving(FakeUpstream(mode="error_500")) as broken:
        client = await app_client(models=_preset(broken.url))
        response = await client.post("/v1/chat/completions", json=CHAT)
        assert response.status == 502
        body = await response.json()
        assert_openai_error(body, code="upstream_unavailable")
        assert broken.url.removesuffix("/v1") in body["error"]["message"]


async def test_a_stream_cut_mid_way_ends_with_an_error_event_and_the_next_request_fails_over(
    app_client: AppClient,
) -> None:
    async with serving(FakeUpstream(mode="cut")) as dying, serving(FakeUpstream()) as good:
        client = await app_client(models=_preset(dying.url, good.url))
        await _until_state(client, "reachable")
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert response.status == 200
        dying.probe_status = 503  # dead for the prober too, so it stays ejected
        events = _events(await response.text())
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert "broke off the stream" in error["message"]
        assert _content(events[:-2]) == "".join(WORDS[:2])  # what came before the cut
        assert len(dying.generations) == 1  # never retried once bytes were sent
        state = await _state(client)
        assert state["state"] == "degraded"
        assert "broke off" in state["error"]
        response = await client.post("/v1/chat/completions", json=CHAT)
        assert response.status == 200
        assert (await response.json())["choices"][0]["message"]["content"] == "".join(WORDS)
        assert len(good.generations) == 1
        assert len(dying.generations) == 1


async def test_an_upstream_400_comes_back_in_openais_shape_naming_the_upstream(
    app_client: AppClient,
) -> None:
    async with serving(FakeUpstream(mode="error_400")) as strict:
        client = await app_client(models=_preset(strict.url))
        response = await client.post("/v1/chat/completions", json={**CHAT, "temperature": 1.9})
        assert response.status == 400
        body = await response.json()
        assert_openai_error(body, code="upstream_bad_request", param="temperature")
        assert strict.url in body["error"]["message"]
        assert "temperature above 1.5" in body["error"]["message"]
        assert (await _state(client))["state"] == "reachable"  # a refusal is no failure


async def test_an_unreachable_upstream_shows_and_fails_fast(app_client: AppClient) -> None:
    url = _closed_port_url()
    client = await app_client(models=_preset(url))
    await _until_state(client, "unreachable")
    state = await _state(client)
    assert "ConnectError" in state["error"]
    assert state["estimated_bytes"] == 0
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status == 502
    body = await response.json()
    assert_openai_error(body, code="upstream_unavailable")
    assert url.removesuffix("/v1") in body["error"]["message"]
    assert KEY not in json.dumps(body)


async def test_a_key_in_the_config_in_clear_is_refused(app_client: AppClient) -> None:
    with pytest.raises(ValueError, match="api_key_env"):
        await app_client(models=_preset("http://127.0.0.1:9/v1", api_key="sk-in-clear"))


async def test_remote_models_take_no_model_slot(app_client: AppClient) -> None:
    async with serving(FakeUpstream()) as upstream:
        models = {**_preset(upstream.url), "fake": {"backend": "fake"}}
        client = await app_client(models=models, max_loaded_models=1)
        await _until_state(client, "reachable")
        response = await client.post("/v1/chat/completions", json={**CHAT, "model": "fake"})
        assert response.status == 200
        assert (await _state(client))["state"] == "reachable"  # not evicted for the local one
        assert client.app[CATALOG].get("far") is not None


async def test_least_outstanding_requests_and_a_conversation_keeps_its_replica(
    app_client: AppClient,
) -> None:
    gate = asyncio.Event()
    async with serving(FakeUpstream(gate=gate)) as a, serving(FakeUpstream(gate=gate)) as b:
        client = await app_client(models=_preset(a.url, b.url))
        await _until_state(client, "reachable")
        held = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert held.status == 200
        await held.content.readline()  # the first word is out: the stream is open on one
        first = a if a.generations else b
        other = b if first is a else a
        # A conversation's first request goes to the replica with fewer outstanding requests.
        headers = {"X-Conversation-Id": "conv-sticky"}
        body = {**CHAT, "stream": True}
        opened = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert opened.status == 200
        await opened.content.readline()
        assert len(other.generations) == 1
        gate.set()
        whole = await opened.read()
        await held.read()
        # Both idle now: the conversation stays with its replica, not the first in the list.
        again = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert again.status == 200
        await again.read()
        assert len(other.generations) == 2
        assert len(first.generations) == 1
        # The stream is resumable like any other: a replay gives its bytes again.
        replay = await client.get("/v1/stream/conv-sticky?from=0")
        assert replay.status == 200
        assert _content(_events((await replay.read()).decode())) == "".join(WORDS)
        assert whole


async def test_a_model_limited_key_does_not_see_a_remote_model(app_client: AppClient) -> None:
    keys = [{"name": "user", "key": "sk-user-0123456789abcdef", "models": ["fake"]}]
    async with serving(FakeUpstream()) as upstream:
        client = await app_client(
            models={**_preset(upstream.url), "fake": {"backend": "fake"}}, api_keys=keys
        )
        auth = {"Authorization": "Bearer sk-user-0123456789abcdef"}
        response = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
        assert response.status == 404
        assert_openai_error(await response.json(), code="model_not_found")
        listed = await (await client.get("/v1/models", headers=auth)).json()
        assert [m["id"] for m in listed["data"]] == ["fake"]
        assert upstream.generations == []


async def test_a_mounted_upstream_shows_every_model_it_lists(app_client: AppClient) -> None:
    async with serving(FakeUpstream(listed=("alpha", "beta:7b"))) as upstream:
        preset = {"backend": "remote", "url": upstream.url, "mount": True}
        client = await app_client(models={"box": preset})
        catalog = client.app[CATALOG]
        await eventually(lambda: catalog.get("box/beta:7b") is not None, seconds=30)
        listed = await (await client.get("/v1/models")).json()
        assert {"box/alpha", "box/beta:7b"} <= {m["id"] for m in listed["data"]}
        assert "box" not in {m["id"] for m in listed["data"]}
        response = await client.post("/v1/chat/completions", json={**CHAT, "model": "box/beta:7b"})
        assert response.status == 200, await response.text()
        assert upstream.generations[-1]["body"]["model"] == "beta:7b"
        assert (await response.json())["model"] == "box/beta:7b"


async def test_a_remote_preset_names_one_model_or_mounts_all() -> None:
    with pytest.raises(ValueError, match="model or mount"):
        ModelPreset(backend="remote", url="http://box:8000/v1")
    with pytest.raises(ValueError, match="model or mount"):
        ModelPreset(backend="remote", url="http://box:8000/v1", model="m", mount=True)
    with pytest.raises(ValueError, match="http"):
        ModelPreset(backend="remote", url="box:8000/v1", model="m")
    with pytest.raises(ValueError, match="backend = 'remote'"):
        ModelPreset(backend="llama", url="http://box:8000/v1")


async def test_a_silent_upstream_ends_the_stream_before_the_child_is_killed(
    app_client: AppClient,
) -> None:
    silent = FakeUpstream(gate=asyncio.Event())  # sends one word, then nothing
    async with serving(silent):
        client = await app_client(models=_preset(silent.url, stall_timeout=4.0))
        await _until_state(client, "reachable")
        pid = (await _state(client))["pid"]
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert response.status == 200
        silent.probe_status = 503  # silent for the prober too, so it stays ejected
        events = _events(await response.text())
        assert events[-1] == "[DONE]"
        message = json.loads(events[-2])["error"]["message"]
        assert "ReadTimeout" in message  # the child's report, not the supervisor's stall kill
        assert silent.url in message
        state = await _state(client)
        assert state["state"] == "unreachable"
        assert state["pid"] == pid
        silent.gate.set()  # type: ignore[union-attr]


async def test_a_connection_closed_without_an_answer_is_tried_once_more(
    app_client: AppClient,
) -> None:
    async with serving(FakeUpstream()) as upstream:
        client = await app_client(models=_preset(upstream.url))
        await _until_state(client, "reachable")
        upstream.drop = 1
        response = await client.post("/v1/chat/completions", json=CHAT)
        assert response.status == 200
        assert (await response.json())["choices"][0]["message"]["content"] == "".join(WORDS)
        assert len(upstream.generations) == 2
        assert (await _state(client))["state"] == "reachable"  # not ejected for it


async def test_an_ejected_replica_comes_back_once_it_answers_the_prober(
    app_client: AppClient,
) -> None:
    async with (
        serving(FakeUpstream(probe_status=503)) as sick,
        serving(FakeUpstream()) as good,
    ):
        client = await app_client(models=_preset(sick.url, good.url))
        await _until_state(client, "degraded")
        sick.probe_status = 200
        await _until_state(client, "reachable")  # re-probed when its back-off ended
        state = await _state(client)
        assert all(u["healthy"] for u in state["upstreams"])
        assert state["error"] is None


async def test_a_key_variable_that_is_not_set_fails_the_model_by_name(
    app_client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORRAL_TEST_UPSTREAM_KEY")
    client = await app_client(models=_preset("http://127.0.0.1:9/v1"))
    await _until_state(client, "failed")
    assert "CORRAL_TEST_UPSTREAM_KEY" in (await _state(client))["error"]
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status in (502, 503)
    assert "CORRAL_TEST_UPSTREAM_KEY" in (await response.json())["error"]["message"]
