"""The scheduler end to end with fake children: eviction, busy models, queue, keep-alive,
pinning, memory budget, preload."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.conftest import SupervisorFactory
from tests.support.supervisor_proc import Supervisor, wait_until

pytestmark = pytest.mark.e2e

MSG = [{"role": "user", "content": "x"}]


def state(http: httpx.Client, model: str) -> str:
    return str(http.get(f"/v1/models/{model}").json()["state"])


def queued(http: httpx.Client, model: str) -> int:
    models = {m["id"]: m for m in http.get("/admin/models").json()["data"]}
    return int(models.get(model, {}).get("queued") or 0)


def ask(http: httpx.Client, model: str, **extra: object) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": model, "messages": MSG, **extra})


def hold_stream(sup: Supervisor, model: str) -> tuple[threading.Event, threading.Thread]:
    """Keep a streaming request to ``model`` open until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def run() -> None:
        with (
            httpx.Client(base_url=sup.base_url, timeout=60) as http,
            http.stream(
                "POST",
                "/v1/chat/completions",
                json={"model": model, "messages": MSG, "stream": True},
            ) as response,
        ):
            for _ in response.iter_lines():
                started.set()
                if release.is_set():
                    return

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(30)
    return release, thread


def test_least_recently_used_idle_model_is_evicted(supervisor: SupervisorFactory) -> None:
    sup = supervisor("max_loaded_models = 2\n")
    with sup.http() as http:
        for model in ("fake", "fake-slow-load", "fake"):  # fake is now the most recent
            assert ask(http, model).status_code == 200
        assert ask(http, "tiny", max_tokens=2).status_code == 200
        assert state(http, "fake-slow-load") == "unloaded"  # least recently used went
        assert state(http, "fake") == "loaded"
        assert state(http, "tiny") == "loaded"
        sup.wait_for_log(r"stopping fake-slow-load \(evicted\)")


def test_busy_model_is_never_evicted_and_the_newcomer_waits(supervisor: SupervisorFactory) -> None:
    sup = supervisor("max_loaded_models = 1\n")
    release, holder = hold_stream(sup, "fake-slow")
    answers: list[int] = []
    with sup.http() as http:
        waiter = threading.Thread(target=lambda: answers.append(ask(http, "fake").status_code))
        waiter.start()
        wait_until(lambda: http.get("/v1/models/fake-slow").json()["state"] == "loaded", 10, "busy")
        # While the stream runs, the busy model stays and the other request queues.
        wait_until(lambda: queued(http, "fake") == 1, 20, "the newcomer to queue")
        assert state(http, "fake-slow") == "loaded"
        assert answers == []
        release.set()
        holder.join(30)
        waiter.join(60)
        assert answers == [200]
        assert state(http, "fake-slow") == "unloaded"


def test_queue_full_is_429(supervisor: SupervisorFactory) -> None:
    sup = supervisor("max_loaded_models = 1\nmax_queue = 1\n")
    release, holder = hold_stream(sup, "fake-slow")
    results: list[int] = []
    with sup.http() as http:
        first = threading.Thread(target=lambda: results.append(ask(http, "fake").status_code))
        first.start()
        wait_until(lambda: queued(http, "fake") == 1, 20, "the first waiter to queue")

        # The first waiter holds the only queue slot; the next is refused at once.
        def second_refused() -> bool:
            response = ask(http, "fake-slow-load")
            return response.status_code == 429 and response.json()["error"]["code"] == "queue_full"

        wait_until(second_refused, 20, "a 429")
        release.set()
        holder.join(30)
        first.join(60)
    assert results == [200]


def test_keep_alive_per_request_and_per_model(supervisor: SupervisorFactory) -> None:
    sup = supervisor('[models.brief]\nbackend = "fake"\nkeep_alive = 0.5\n')
    with sup.http() as http:
        assert ask(http, "fake", keep_alive=0).status_code == 200
        wait_until(lambda: state(http, "fake") == "unloaded", 10, "keep_alive 0 to unload")
        assert ask(http, "fake", keep_alive="10m").status_code == 200
        assert ask(http, "brief").status_code == 200
        wait_until(lambda: state(http, "brief") == "unloaded", 10, "the preset's keep_alive")
        assert state(http, "fake") == "loaded"  # 10 minutes have not passed
        assert ask(http, "fake", keep_alive="soon").status_code == 400


def test_pinned_model_stays_and_what_cannot_fit_fails_fast(supervisor: SupervisorFactory) -> None:
    sup = supervisor('max_loaded_models = 1\n[models.pinned]\nbackend = "fake"\npinned = true\n')
    with sup.http() as http:
        assert ask(http, "pinned").status_code == 200
        refused = ask(http, "fake")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "insufficient_memory"
        assert state(http, "pinned") == "loaded"


def test_memory_budget_refuses_a_model_that_can_never_fit(supervisor: SupervisorFactory) -> None:
    sup = supervisor("memory_budget = 1000\n")
    with sup.http() as http:
        response = ask(http, "tiny")  # a real GGUF plus its KV cache estimate: far over 1000 B
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "insufficient_memory"
        assert "budget" in response.json()["error"]["message"]


def test_preload_loads_models_at_start(supervisor: SupervisorFactory) -> None:
    sup = supervisor('preload = ["fake", "no-such-model"]\n')
    with sup.http() as http:
        wait_until(lambda: state(http, "fake") == "loaded", 20, "the preload")
    sup.wait_for_log("preload of no-such-model failed")
