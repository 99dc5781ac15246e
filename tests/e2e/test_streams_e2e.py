"""Resumable streams end to end: a real supervisor, real children, raw HTTP bytes."""

from __future__ import annotations

import json
import re
import signal
import threading

import httpx
import pytest

from tests.conftest import SupervisorFactory
from tests.support.supervisor_proc import Supervisor, wait_until

pytestmark = pytest.mark.e2e

STREAM_PRESETS = """
[models.fake-60]
backend = "fake"
args = ["--tokens-per-second", "50", "--reply-tokens", "60"]

[models.fake-trickle]
backend = "fake"
args = ["--tokens-per-second", "5", "--reply-tokens", "4"]
"""


class RawStream:
    """A streamed response read as raw bytes, in as many steps as a test needs."""

    def __init__(self, client: httpx.Client, response: httpx.Response) -> None:
        self.client = client
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self._chunks = response.iter_raw() if response.status_code == 200 else iter(())

    def read(self, events: int | None = None) -> bytes:
        got = b""
        for chunk in self._chunks:
            got += chunk
            if events is not None and got.count(b"\n\n") >= events:
                break
        return got

    def json(self) -> dict[str, object]:
        self.response.read()
        return self.response.json()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.response.close()
        self.client.close()


def post_stream(sup: Supervisor, cid: str, model: str, **extra: object) -> RawStream:
    client = httpx.Client(base_url=sup.base_url, timeout=60)
    body = {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
        **extra,
    }
    request = client.build_request(
        "POST", "/v1/chat/completions", json=body, headers={"X-Conversation-Id": cid}
    )
    return RawStream(client, client.send(request, stream=True))


def read_bytes(stream: RawStream, limit: int | None = None) -> bytes:
    return stream.read(limit)


def lookup(http: httpx.Client, *ids: str) -> dict[str, dict[str, object]]:
    response = http.post("/v1/streams/lookup", json={"conversation_ids": list(ids)})
    assert response.status_code == 200
    return {d["conversation_id"]: d for d in response.json()["data"]}


def text_of(body: bytes) -> str:
    out = []
    for block in body.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                event = json.loads(line[6:])
                if event.get("choices"):
                    out.append(event["choices"][0]["delta"].get("content") or "")
    return "".join(out)


@pytest.fixture
def sup(supervisor: SupervisorFactory) -> Supervisor:
    return supervisor(STREAM_PRESETS)


def test_disconnect_then_reattach_is_byte_identical(sup: Supervisor) -> None:
    response = post_stream(sup, "conv-1", "fake-60")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    first = read_bytes(response, limit=3)
    response.close()  # the client drops mid-answer
    with sup.http() as http:
        assert lookup(http, "conv-1")["conv-1"]["state"] == "running"
        rest = http.get(f"/v1/stream/conv-1?from={len(first)}").content
        whole = http.get("/v1/stream/conv-1").content
        info = lookup(http, "conv-1")["conv-1"]
    assert first + rest == whole
    assert whole.endswith(b"data: [DONE]\n\n")
    assert text_of(whole) == " ".join(f"tok{i}" for i in range(60))
    assert info["state"] == "done"
    assert info["bytes"] == len(whole)
    assert info["model"] == "fake-60"


def test_event_ids_are_byte_offsets_and_last_event_id_resumes(sup: Supervisor) -> None:
    with sup.http() as http:
        response = post_stream(sup, "conv-ids", "fake-60")
        whole = read_bytes(response)
        response.close()
        position = 0
        ids = []
        for block in whole.split(b"\n\n")[:-1]:
            position += len(block) + 2
            match = re.match(rb"id: (\d+)\n", block)
            if block.startswith(b":"):
                continue  # a ping comment carries no id
            assert match, block
            assert int(match.group(1)) == position
            ids.append(position)
        middle = ids[len(ids) // 2]
        by_header = http.get("/v1/stream/conv-ids", headers={"Last-Event-ID": str(middle)}).content
        by_query = http.get(f"/v1/stream/conv-ids?from={middle}").content
        assert by_header == by_query == whole[middle:]


@pytest.mark.llama
def test_reattached_llama_stream_equals_an_uninterrupted_run(sup: Supervisor) -> None:
    args = {"max_tokens": 40, "temperature": 0, "seed": 5}
    with sup.http() as http:
        plain = http.post(
            "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "go"}], **args},
        ).json()
        response = post_stream(sup, "conv-llama", "tiny", **args)
        first = read_bytes(response, limit=2)
        response.close()
        rest = http.get(f"/v1/stream/conv-llama?from={len(first)}").content
    assert text_of(first + rest) == plain["choices"][0]["message"]["content"]


def test_two_readers_follow_one_live_session(sup: Supervisor) -> None:
    response = post_stream(sup, "conv-two", "fake-60")
    read_bytes(response, limit=1)
    bodies: list[bytes] = []

    def reader() -> None:
        with httpx.Client(base_url=sup.base_url, timeout=60) as http:
            bodies.append(http.get("/v1/stream/conv-two?from=0").content)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    original = read_bytes(response)
    for thread in threads:
        thread.join(60)
    response.close()
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]
    assert bodies[0].endswith(b"data: [DONE]\n\n")
    assert bodies[0].endswith(original)


def test_overflowed_ring_refuses_old_offsets_but_follows_the_tail(
    supervisor: SupervisorFactory,
) -> None:
    sup = supervisor("stream_buffer_bytes = 4096\n")
    response = post_stream(sup, "conv-big", "fake-slow")
    response.close()
    with sup.http() as http:
        wait_until(
            lambda: int(lookup(http, "conv-big")["conv-big"]["bytes"]) > 6000,
            60,
            "the ring to overflow",
        )  # type: ignore[call-overload]
        old = http.get("/v1/stream/conv-big?from=0")
        assert old.status_code == 400
        assert old.json()["error"]["code"] == "offset_gone"
        tail_from = int(lookup(http, "conv-big")["conv-big"]["bytes"])  # type: ignore[call-overload]
        with http.stream("GET", f"/v1/stream/conv-big?from={tail_from}") as tail:
            assert tail.status_code == 200
            live = b""
            for chunk in tail.iter_raw():
                live += chunk
                if live.count(b"\n\n") >= 3:
                    break
        assert b"tok" in live
        assert http.delete("/v1/stream/conv-big").status_code == 204


def test_delete_stops_the_child_and_ends_readers(sup: Supervisor) -> None:
    response = post_stream(sup, "conv-del", "fake-slow")
    read_bytes(response, limit=2)
    with sup.http() as http:
        assert http.delete("/v1/stream/conv-del").status_code == 204
        # The original follower's stream ends cleanly rather than hanging.
        rest = read_bytes(response)
        response.close()
        assert isinstance(rest, bytes)
        match = sup.wait_for_log(r"finished: reason=cancelled completion_tokens=(\d+)")
        stopped_at = int(match.group(1))
        assert lookup(http, "conv-del")["conv-del"]["state"] == "cancelled"
        size = lookup(http, "conv-del")["conv-del"]["bytes"]
        assert http.delete("/v1/stream/conv-del").status_code == 204  # idempotent
        assert http.delete("/v1/stream/never-existed").status_code == 204
        assert lookup(http, "conv-del")["conv-del"]["bytes"] == size  # nothing more was produced
        assert stopped_at < 1000


def test_lookup_and_validation(sup: Supervisor) -> None:
    with sup.http() as http:
        known = post_stream(sup, "conv-known", "fake")
        read_bytes(known)
        known.close()
        found = lookup(http, "conv-known", "conv-unknown")
        assert set(found) == {"conv-known"}
        assert found["conv-known"]["state"] == "done"
        for bad in ("a b", "x" * 129, "slash//y", "../up", ""):  # "conv/model" is an id
            response = http.post("/v1/streams/lookup", json={"conversation_ids": [bad]})
            assert response.status_code == 400, bad
        assert http.post("/v1/streams/lookup", json={"ids": []}).status_code == 400
        assert http.get("/v1/stream/" + "x" * 129).status_code == 400
        assert http.get("/v1/stream/unknown-one").status_code == 404
        assert http.get("/v1/stream/conv-known?from=999999").status_code == 416
        assert http.get("/v1/stream/conv-known?from=abc").status_code == 400
        assert http.get("/v1/stream/conv-known?from=-1").status_code == 400
        bad_header = http.post(
            "/v1/chat/completions",
            json={"model": "fake", "stream": True, "messages": [{"role": "user", "content": "x"}]},
            headers={"X-Conversation-Id": "bad id!"},
        )
        assert bad_header.status_code == 400
        assert bad_header.json()["error"]["code"] == "invalid_conversation_id"


def test_finished_sessions_expire_after_the_ttl(supervisor: SupervisorFactory) -> None:
    sup = supervisor("stream_ttl = 0.5\n")
    with sup.http() as http:
        finished = post_stream(sup, "conv-ttl", "fake")
        read_bytes(finished)
        finished.close()
        assert http.get("/v1/stream/conv-ttl").status_code == 200
        wait_until(
            lambda: http.get("/v1/stream/conv-ttl").status_code == 404, 10, "the session to expire"
        )
        assert lookup(http, "conv-ttl") == {}


def test_new_post_replaces_and_cancels_the_old_session(sup: Supervisor) -> None:
    old = post_stream(sup, "conv-r", "fake-slow")
    read_bytes(old, limit=2)
    new = post_stream(sup, "conv-r", "fake-60")
    old_rest = read_bytes(old)  # the old follower ends, told that its generation stopped
    old.close()
    assert old_rest.endswith(b"data: [DONE]\n\n"), old_rest
    assert b'"code":"stream_stopped"' in old_rest, old_rest
    body = read_bytes(new)
    new.close()
    assert text_of(body) == " ".join(f"tok{i}" for i in range(60))
    sup.wait_for_log(r"finished: reason=cancelled")
    with sup.http() as http:
        info = lookup(http, "conv-r")["conv-r"]
        assert info["model"] == "fake-60"
        assert info["state"] == "done"


def test_memory_cap_refuses_new_sessions_with_503(supervisor: SupervisorFactory) -> None:
    # The one owner (auth is off) may have more than the total: the total cap is tested.
    sup = supervisor(
        "stream_buffer_bytes = 4096\nstream_total_bytes = 8192\nstream_bytes_per_owner = 12288\n"
    )
    first = post_stream(sup, "cap-1", "fake-slow")
    second = post_stream(sup, "cap-2", "fake-slow")
    third = post_stream(sup, "cap-3", "fake-slow")
    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 503
    assert third.json()["error"]["code"] == "stream_capacity"  # type: ignore[index]
    for response in (first, second, third):
        response.close()
    with sup.http() as http:
        for cid in ("cap-1", "cap-2"):
            http.delete(f"/v1/stream/{cid}")


def test_idle_pings_are_part_of_the_replayable_body(supervisor: SupervisorFactory) -> None:
    sup = supervisor("sse_ping_interval = 0.05\n" + STREAM_PRESETS)
    response = post_stream(sup, "conv-ping", "fake-trickle")
    original = read_bytes(response)
    response.close()
    assert b": ping\n\n" in original
    with sup.http() as http:
        assert http.get("/v1/stream/conv-ping").content == original


def test_shutdown_ends_followers_cleanly(supervisor: SupervisorFactory) -> None:
    sup = supervisor("shutdown_grace = 0.5\n")
    response = post_stream(sup, "conv-shut", "fake-slow")
    first = read_bytes(response, limit=2)
    assert sup.proc is not None
    sup.proc.send_signal(signal.SIGTERM)
    rest = read_bytes(response)  # returns: the stream was finalised, no hang
    response.close()
    assert (first + rest).endswith(b"data: [DONE]\n\n")
    assert b'"finish_reason":"stop"' in rest
    assert sup.terminate() == 0
