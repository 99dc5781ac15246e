"""Remote models end to end: a real Corral in front of other real Corrals (and llama.cpp's
llama-server when it is built), driven with the official openai client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import SupervisorFactory, client_for, have_demo
from tests.support.supervisor_proc import Supervisor, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.llama]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import llama_server  # noqa: E402

KEY = "sk-upstream-e2e-7f3a9c1d"
KEYS = f'[[api_keys]]\nname = "front"\nkey = "{KEY}"\n'
ENV = {"CORRAL_E2E_UPSTREAM_KEY": KEY}


def _remote(name: str, model: str, *urls: str) -> str:
    replicas = ", ".join(f'"{u}"' for u in urls[1:])
    return (
        f'[models.{name}]\nbackend = "remote"\nurl = "{urls[0]}"\nreplicas = [{replicas}]\n'
        f'model = "{model}"\napi_key_env = "CORRAL_E2E_UPSTREAM_KEY"\n'
        'serves = ["chat", "completion", "embeddings"]\n'
    )


def _state(sup: Supervisor, model: str) -> dict[str, object]:
    with sup.http() as http:
        items = http.get("/admin/models").json()["data"]
    return next(i for i in items if i["id"] == model)


@pytest.mark.demo
@pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed")
def test_the_demo_model_through_a_second_corral(supervisor: SupervisorFactory) -> None:
    upstream = supervisor(KEYS)
    demo = "qwen2.5-coder-0.5b-instruct"
    front = supervisor(_remote("far", demo, upstream.base_url + "/v1"), env=ENV)
    client = client_for(front)
    args = {
        "model": "far",
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 16,
        "temperature": 0,
        "seed": 5,
    }
    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})  # type: ignore[call-overload]
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0
    assert all(c.model == "far" for c in chunks)
    direct = httpx.post(
        upstream.base_url + "/v1/chat/completions",
        json={**args, "model": demo},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    ).json()
    assert text == direct["choices"][0]["message"]["content"]
    completion = client.completions.create(
        model="far", prompt="def add(a, b):", max_tokens=8, temperature=0
    )
    assert completion.choices[0].text
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


def test_failover_when_an_upstream_dies_and_the_key_never_leaks(
    supervisor: SupervisorFactory, tmp_path: Path
) -> None:
    first, second = supervisor(KEYS), supervisor(KEYS)
    urls = (first.base_url + "/v1", second.base_url + "/v1")
    front = supervisor(_remote("far", "tiny", *urls), env=ENV)
    wait_until(lambda: _state(front, "far")["state"] == "reachable", 60, "reachable")
    client = client_for(front)
    body = {"model": "far", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    for _ in range(2):
        reply = client.chat.completions.create(**body)  # type: ignore[call-overload]
        assert reply.choices[0].finish_reason in {"stop", "length"}
    first.kill()
    for _ in range(3):  # every request succeeds: a refused connect moves on to the other
        stream = client.chat.completions.create(**body, stream=True)  # type: ignore[call-overload]
        assert [c.choices[0].finish_reason for c in stream if c.choices][-1] in {"stop", "length"}
    state = _state(front, "far")
    assert state["state"] == "degraded"
    assert first.base_url in str(state["error"])
    front.terminate()  # flushes the analytics writer
    logs = front.log_text()
    assert "far" in logs
    assert KEY not in logs
    db = Path(str(tmp_path / "corral-2.db"))
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert b"far" in stored  # the requests were counted
    assert KEY.encode() not in stored
    second.terminate()
    assert KEY not in second.log_text()


def test_an_upstream_that_refuses_the_key_is_a_502_naming_it(supervisor: SupervisorFactory) -> None:
    upstream = supervisor(KEYS)
    front = supervisor(
        _remote("far", "tiny", upstream.base_url + "/v1"),
        env={"CORRAL_E2E_UPSTREAM_KEY": "sk-wrong-key-000"},
    )
    with front.http() as http:
        answer = http.post(
            "/v1/chat/completions",
            json={"model": "far", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert upstream.base_url in error["message"]
    assert "401" in error["message"]
    assert "sk-wrong-key-000" not in json.dumps(answer.json())
    assert "sk-wrong-key-000" not in front.log_text()


@pytest.mark.skipif(
    llama_server.binary() is None, reason="llama-server is not built (make llama-server)"
)
def test_llama_server_as_an_upstream(supervisor: SupervisorFactory, tiny_models_dir: Path) -> None:
    binary = llama_server.binary()
    assert binary is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [str(binary), "-m", str(tiny_models_dir / "tiny.gguf"), "--port", str(port),
         "--host", "127.0.0.1", "-c", "512", "--api-key", KEY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/v1"

        def healthy() -> bool:
            try:
                return httpx.get(url.removesuffix("/v1") + "/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 120, "llama-server to load")
        front = supervisor(_remote("far", "tiny", url), env=ENV)
        wait_until(lambda: _state(front, "far")["state"] == "reachable", 120, "llama-server")
        client = client_for(front)
        stream = client.chat.completions.create(
            model="far",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
            logprobs=True,
            top_logprobs=2,
        )
        chunks = list(stream)
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in {"stop", "length"}
        # llama-server's logprobs come through as the client asked for them.
        scored = [
            item
            for c in chunks
            if c.choices and c.choices[0].logprobs and c.choices[0].logprobs.content
            for item in c.choices[0].logprobs.content
        ]
        assert scored
        assert all(len(item.top_logprobs) == 2 for item in scored)
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens > 0
    finally:
        proc.terminate()
        proc.wait(30)
