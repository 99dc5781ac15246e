"""Faults end to end: disconnects, crashed and hung children, supervisor death, SIGTERM drain."""

from __future__ import annotations

import json
import os
import re
import signal
import threading

import httpx
import pytest

from tests.conftest import SupervisorFactory, client_for, have_demo
from tests.support.supervisor_proc import pid_alive, wait_until

pytestmark = pytest.mark.e2e

CHAT = {"messages": [{"role": "user", "content": "go"}], "stream": True}


def _loaded_pid(sup_log: str, model: str) -> int:
    matches = re.findall(rf"loaded {re.escape(model)} \(pid (\d+)\)", sup_log)
    assert matches, f"no load of {model} in the log"
    return int(matches[-1])


def _events(lines: list[str]) -> list[str]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


def test_disconnect_cancels_generation_in_fake_child(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    with (
        sup.http() as http,
        http.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "model": "fake-slow"}
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"content":"tok1"' in line.replace(" ", ""):
                break
    # The client is gone; the child must hear about it and stop.
    match = sup.wait_for_log(r"finished: reason=cancelled completion_tokens=(\d+)")
    assert int(match.group(1)) < 1000


@pytest.mark.llama
@pytest.mark.demo
@pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed")
def test_disconnect_cancels_generation_in_llama_child(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    body = {
        "model": "qwen2.5-coder-0.5b-instruct",
        "messages": [{"role": "user", "content": "Write a long story about a horse."}],
        "stream": True,
        "max_tokens": 400,
        "temperature": 0,
    }
    with (
        sup.http(timeout=300) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                seen += 1
                if seen == 3:
                    break
    match = sup.wait_for_log(r"finished: reason=cancelled completion_tokens=(\d+)", timeout=60)
    assert int(match.group(1)) < 400


def test_child_killed_mid_stream_then_next_request_restarts_it(
    supervisor: SupervisorFactory,
) -> None:
    sup = supervisor()
    with sup.http() as http:
        lines: list[str] = []
        with http.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "model": "fake-slow"}
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append(line)
                if len(_events(lines)) == 3:
                    os.kill(_loaded_pid(sup.log_text(), "fake-slow"), signal.SIGKILL)
        events = _events(lines)
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["code"] == "model_failed"
        assert "signal 9" in error["message"]

        model = http.get("/v1/models/fake-slow").json()
        assert model["state"] == "failed"
        assert "signal 9" in model["error"]

        again = http.post(
            "/v1/chat/completions",
            json={"model": "fake-slow", "max_tokens": 3, "messages": CHAT["messages"]},
        )
        assert again.status_code == 200
        assert again.json()["choices"][0]["message"]["content"] == "tok0 tok1 tok2"
        assert http.get("/v1/models/fake-slow").json()["state"] == "loaded"


def test_crash_before_the_stream_is_a_502_and_repeated_crashes_back_off(
    supervisor: SupervisorFactory,
) -> None:
    sup = supervisor()
    with sup.http() as http:
        body = {**CHAT, "model": "fake-crash-start"}
        first = http.post("/v1/chat/completions", json=body)
        assert first.status_code == 502
        assert first.json()["error"]["code"] == "model_failed"
        assert "exited with code 13" in first.json()["error"]["message"]
        second = http.post("/v1/chat/completions", json=body)
        assert second.status_code == 502
        # Two crashes in a row: no tight restart loop, a clear 503 with Retry-After instead.
        third = http.post("/v1/chat/completions", json=body)
        assert third.status_code == 503
        assert third.json()["error"]["code"] == "crash_backoff"
        assert int(third.headers["Retry-After"]) >= 1
        # Other models are unaffected.
        ok = http.post("/v1/chat/completions", json={"model": "fake", "messages": CHAT["messages"]})
        assert ok.status_code == 200


def test_failed_load_is_reported_and_shown(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    with sup.http() as http:
        response = http.post(
            "/v1/chat/completions", json={"model": "fake-bad-load", "messages": CHAT["messages"]}
        )
        assert response.status_code == 502
        assert "fake load failure" in response.json()["error"]["message"]
        model = http.get("/v1/models/fake-bad-load").json()
        assert model["state"] == "failed"
        assert "fake load failure" in model["error"]


def test_hung_load_times_out_and_the_child_is_killed(supervisor: SupervisorFactory) -> None:
    config = 'child_load_timeout = 1.5\n[models.fake-hang]\nbackend = "fake"\nargs = ["--hang", "load"]\n'
    sup = supervisor(config)
    with sup.http() as http:
        response = http.post(
            "/v1/chat/completions", json={"model": "fake-hang", "messages": CHAT["messages"]}
        )
        assert response.status_code == 502
        assert "did not start in time" in response.json()["error"]["message"]


def test_concurrent_first_requests_share_one_load(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    results: list[int] = []

    def ask() -> None:
        with sup.http() as http:
            response = http.post(
                "/v1/chat/completions",
                json={"model": "fake-slow-load", "messages": CHAT["messages"]},
            )
            results.append(response.status_code)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200, 200, 200, 200]
    assert sup.log_text().count("loading fake-slow-load") == 1


def test_no_orphans_after_supervisor_is_killed(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    client = client_for(sup)
    client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "x"}])
    client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=2
    )
    pids = [_loaded_pid(sup.log_text(), m) for m in ("fake", "tiny")]
    assert all(pid_alive(pid) for pid in pids)
    sup.kill()  # SIGKILL: no chance to clean up
    wait_until(
        lambda: not any(pid_alive(pid) for pid in pids), 15, "children to die with the supervisor"
    )


def test_sigterm_past_the_grace_period_ends_streams_cleanly(supervisor: SupervisorFactory) -> None:
    sup = supervisor("shutdown_grace = 0.5\n")
    with sup.http() as http:
        lines: list[str] = []
        with http.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "model": "fake-slow"}
        ) as response:
            for line in response.iter_lines():
                lines.append(line)
                if len(_events(lines)) == 2:
                    assert sup.proc is not None
                    sup.proc.send_signal(signal.SIGTERM)
    events = _events(lines)
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"
    sup.wait_for_log(r"finished: reason=cancelled")
    sup.wait_for_log("1 generations were cut short")
    assert sup.terminate() == 0


def test_sigterm_drains_in_flight_stream_then_exits_zero(supervisor: SupervisorFactory) -> None:
    config = '[models.fake-drain]\nbackend = "fake"\nargs = ["--tokens-per-second", "30", "--reply-tokens", "30"]\n'
    sup = supervisor(config)
    with sup.http() as http:
        http.post(
            "/v1/chat/completions",
            json={"model": "fake-drain", "messages": CHAT["messages"], "max_tokens": 1},
        )
        child = _loaded_pid(sup.log_text(), "fake-drain")
        lines: list[str] = []
        with http.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "model": "fake-drain"}
        ) as response:
            for line in response.iter_lines():
                lines.append(line)
                if len(_events(lines)) == 2:
                    assert sup.proc is not None
                    sup.proc.send_signal(signal.SIGTERM)
                    sup.wait_for_log("shutting down")
                    # New connections are refused while the old stream drains.
                    with pytest.raises(httpx.ConnectError):
                        httpx.get(sup.base_url + "/health", timeout=5)
    events = _events(lines)
    assert events[-1] == "[DONE]"
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content", "")
        for e in events[:-1]
        if json.loads(e).get("choices")
    )
    assert text == " ".join(f"tok{i}" for i in range(30))
    assert sup.terminate() == 0
    assert not pid_alive(child)
