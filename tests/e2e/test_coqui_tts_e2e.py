"""A Coqui VITS model through a real supervisor: a tiny random one in the models directory,
spoken through the official client in every format and as server-sent events, listed in
``/v1/models`` and ``/v1/audio/voices``, unloaded and loaded again on demand."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.speech import decoded_seconds, pcm_seconds
from tests.support.supervisor_proc import Supervisor, wait_until
from tests.support.tiny_vits import SPEAKERS, build_tiny_vits, have_coqui

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_coqui(), reason="needs coqui-tts (the speech extra)"),
]
MODEL = "coqui/tiny-vits"
TEXT = "Open the door. Turn on the light!"


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    root = tmp_path_factory.mktemp("coqui-e2e")
    build_tiny_vits(root / "models" / "coqui" / "tiny-vits")
    config = root / "corral.toml"
    # Only the tiny model (speech_models = false: no bundled voice beside it).
    config.write_text("demo_model = false\nspeech_models = false\nshutdown_grace = 5\n")
    server = Supervisor(data_dir=root / "data", models_dir=root / "models", config=config)
    server.start()
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def client(sup: Supervisor) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=sup.base_url + "/v1", api_key="unused", max_retries=0, timeout=180
    ) as c:
        yield c


def _admin(http: httpx.Client) -> dict[str, Any]:
    return {m["id"]: m for m in http.get("/admin/models").json()["data"]}


def test_listed_as_a_speech_model_with_its_speakers(client: openai.OpenAI, sup: Supervisor) -> None:
    listed = {m.id: m for m in client.models.list().data}
    assert listed[MODEL].model_extra is not None
    assert listed[MODEL].model_extra["kind"] == "speech"
    with sup.http() as http:
        voices = http.get("/v1/audio/voices", params={"model": MODEL}).json()["data"]
        item = _admin(http)[MODEL]
    assert voices == [{"id": s, "object": "voice", "model": MODEL} for s in SPEAKERS]
    assert item["backend"] == "tts"
    # torch and Coqui besides the weights: counted as 512 MiB of runtime.
    assert item["estimated_bytes"] == item["size_bytes"] + (512 << 20)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_format_decodes_to_the_speech_made(client: openai.OpenAI, fmt: str) -> None:
    # quality best: noise-free VITS, so every format carries exactly the same speech.
    reference = client.audio.speech.create(
        model=MODEL, voice="bob", input=TEXT, response_format="pcm", extra_body={"quality": "best"}
    ).content
    data = client.audio.speech.create(
        model=MODEL,
        voice="bob",
        input=TEXT,
        response_format=fmt,  # type: ignore[arg-type]
        extra_body={"quality": "best"},
    ).content
    if fmt == "pcm":
        assert data == reference
    else:
        assert decoded_seconds(data) == pytest.approx(pcm_seconds(reference), abs=0.15)


def test_speech_as_server_sent_events(sup: Supervisor) -> None:
    body = {"model": MODEL, "input": TEXT, "stream_format": "sse", "response_format": "pcm"}
    with sup.http(timeout=180) as http:
        with http.stream("POST", "/v1/audio/speech", json={**body, "quality": "best"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        whole = http.post(
            "/v1/audio/speech", json={**body, "stream_format": "audio", "quality": "best"}
        )
    events = [json.loads(line[6:]) for line in lines]
    assert events[-1]["type"] == "speech.audio.done"
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    assert len(events) - 1 >= 2  # a sentence each, at least
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]) == whole.content


def test_refusals_name_the_field(client: openai.OpenAI) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"voice": "alloy"}, "voice"),
        ({"voice": "bob", "extra_body": {"language": "fr"}}, "language"),
        ({"voice": "bob", "extra_body": {"quality": "ultra"}}, "quality"),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.audio.speech.create(model=MODEL, input="Hello.", **extra)
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["param"] == param, body


def test_unloaded_like_any_model_and_loaded_again(client: openai.OpenAI, sup: Supervisor) -> None:
    client.audio.speech.create(model=MODEL, voice="alice", input="Hello.", response_format="wav")
    with sup.http() as http:
        assert _admin(http)[MODEL]["state"] == "loaded"
        assert http.post("/admin/models/unload", json={"model": MODEL}).status_code == 200
        wait_until(lambda: _admin(http)[MODEL]["state"] == "unloaded", 30, "the model to unload")
    again = client.audio.speech.create(
        model=MODEL, voice="alice", input="Hello.", response_format="wav"
    )
    assert again.content[:4] == b"RIFF"
    with sup.http() as http:
        assert _admin(http)[MODEL]["state"] == "loaded"
