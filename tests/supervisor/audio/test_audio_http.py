"""The audio routes' refusals, in-process: every bad request is a 400/413 before any model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from corral.protocol.speech import Segment, TranscriptionStarted
from corral.supervisor.app import create_app
from corral.supervisor.audio.transcripts import Transcript, render
from corral.supervisor.settings import load_settings
from tests.support.speech import have_speech

LIMIT = 4096
Client = TestClient[Any, Any]


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        demo_model=False,
        max_audio_bytes=LIMIT,
        max_speech_input=100,
    )
    stale = tmp_path / "data" / "uploads" / "upload-left-by-a-crash"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"RIFF")
    client = await aiohttp_client(create_app(settings))
    assert not stale.exists()  # cleared at start
    return client


def _form(fields: dict[str, str | list[str]], file: bytes | None = b"RIFF....") -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        for item in [value] if isinstance(value, str) else value:
            form.add_field(name, item)
    if file is not None:
        form.add_field("file", file, filename="a.wav", content_type="audio/wav")
    return form


async def _error(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = (await response.json())["error"]
    return body


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"chunking_strategy": "auto"}, "chunking_strategy"),
        ({"include[]": "logprobs"}, "include[]"),
        ({"response_format": "docx"}, "response_format"),
        ({"temperature": "1.5"}, "temperature"),
        ({"language": "English"}, "language"),
        ({"timestamp_granularities[]": "word"}, "timestamp_granularities[]"),
        ({"stream": "true", "response_format": "srt"}, "stream"),
        ({"stream": "maybe"}, "stream"),
        ({"beam_size": "0"}, "beam_size"),
        ({"prompt": ["a", "b"]}, "prompt"),
    ],
)
async def test_bad_transcription_fields_are_400s_naming_the_field(
    client: Client, tmp_path: Path, fields: dict[str, str | list[str]], param: str
) -> None:
    response = await client.post("/v1/audio/transcriptions", data=_form(fields))
    assert (await _error(response, 400))["param"] == param
    assert not any((tmp_path / "data" / "uploads").iterdir())  # the upload is gone already


async def test_translations_refuse_what_only_transcriptions_take(client: Client) -> None:
    response = await client.post("/v1/audio/translations", data=_form({"language": "de"}))
    assert (await _error(response, 400))["param"] == "language"


async def test_an_upload_over_the_limit_is_a_413(client: Client, tmp_path: Path) -> None:
    response = await client.post("/v1/audio/transcriptions", data=_form({}, b"\0" * (LIMIT + 1)))
    error = await _error(response, 413)
    assert error["param"] == "file"
    assert not any((tmp_path / "data" / "uploads").iterdir())


async def test_form_without_file_or_not_multipart(client: Client) -> None:
    no_file = await client.post("/v1/audio/transcriptions", data=_form({"model": "x"}, None))
    assert (await _error(no_file, 400))["param"] == "file"
    empty = await client.post("/v1/audio/transcriptions", data=_form({}, b""))
    assert (await _error(empty, 400))["code"] == "invalid_audio"
    as_json = await client.post("/v1/audio/transcriptions", json={"file": "x"})
    assert (await _error(as_json, 400))["code"] == "invalid_body"


@pytest.mark.skipif(not have_speech(), reason="needs the bundled speech models")
async def test_speech_refusals_before_any_model_loads(client: Client) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"input": "Hi.", "voice": "alloy"}, "voice"),
        ({"input": "x" * 101}, "input"),
        ({"input": "   "}, "input"),
        ({"input": "Hi.", "instructions": "slowly"}, "instructions"),
        ({"input": "Hi.", "speed": 5}, "speed"),
        ({"input": "Hi.", "response_format": "ogg"}, "response_format"),
        ({"input": "Hi.", "model": "whisper-1"}, "model"),
        ({"input": "Hi.", "quality": "ultra"}, "quality"),
        ({"input": "Hi.", "language": "not a language"}, "language"),
    ]
    for body, param in cases:
        response = await client.post("/v1/audio/speech", json={"model": "tts-1", **body})
        assert (await _error(response, 400))["param"] == param, body
    models = await (await client.get("/admin/models")).json()
    assert all(m["state"] == "unloaded" for m in models["data"])


def _transcript() -> Transcript:
    info = TranscriptionStarted(
        request_id="r", duration=3725.5, language="en", language_probability=1.0
    )
    segments = [
        Segment(request_id="r", id=0, seek=0, start=0.0, end=1.5, text=" Hello there."),
        Segment(request_id="r", id=1, seek=0, start=3723.25, end=3725.5, text=" Goodbye."),
    ]
    return Transcript("transcribe", info, segments)


def test_srt_and_vtt_timestamps() -> None:
    srt, kind = render(_transcript(), "srt", frozenset({"segment"}))
    assert kind == "application/x-subrip"
    assert srt == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n01:02:03,250 --> 01:02:05,500\nGoodbye.\n"
    )
    vtt, _ = render(_transcript(), "vtt", frozenset({"segment"}))
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n")
    text, kind = render(_transcript(), "text", frozenset())
    assert (text, kind) == ("Hello there. Goodbye.\n", "text/plain")
