"""Speech through a real supervisor with the official client: Piper speaks, Whisper hears.

One supervisor serves the module (its two speech children load once); the models are the
bundled Whisper tiny.en and Piper en_US-joe-medium.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.speech import (
    SENTENCE,
    decoded_seconds,
    have_speech,
    pcm_seconds,
    transcode,
    words,
)
from tests.support.supervisor_proc import Supervisor, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_speech(), reason="needs the speech extra"),
]
VOICE = "en_US-joe-medium"
AUDIO_LIMIT = 2_000_000


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    root = tmp_path_factory.mktemp("speech")
    config = root / "corral.toml"
    config.write_text(f"demo_model = false\nmax_audio_bytes = {AUDIO_LIMIT}\nshutdown_grace = 5\n")
    (root / "models").mkdir()
    server = Supervisor(data_dir=root / "data", models_dir=root / "models", config=config)
    server.start()
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def client(sup: Supervisor) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=sup.base_url + "/v1", api_key="unused", max_retries=0, timeout=120
    ) as c:
        yield c


@pytest.fixture(scope="module")
def spoken(client: openai.OpenAI) -> bytes:
    """The sentence as a wav file, spoken by Piper through Corral."""
    return client.audio.speech.create(
        model="tts-1", voice=VOICE, input=SENTENCE, response_format="wav"
    ).content


def test_piper_speaks_and_whisper_hears_the_same_words(
    client: openai.OpenAI, spoken: bytes
) -> None:
    assert spoken[:4] == b"RIFF"
    result = client.audio.transcriptions.create(model="whisper-1", file=("s.wav", spoken))
    assert words(result.text) == words(SENTENCE)


def test_a_webm_opus_recording_as_a_browser_makes_it(client: openai.OpenAI, spoken: bytes) -> None:
    webm = transcode(spoken, "webm", "libopus")
    assert webm[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska/WebM file
    result = client.audio.transcriptions.create(model="whisper-tiny.en", file=("r.webm", webm))
    assert words(result.text) == words(SENTENCE)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_speech_format_decodes_to_the_same_length(
    client: openai.OpenAI, spoken: bytes, fmt: str
) -> None:
    data = client.audio.speech.create(
        model="tts-1",
        voice=VOICE,
        input=SENTENCE,
        response_format=fmt,  # type: ignore[arg-type]
    ).content
    reference = decoded_seconds(spoken)
    seconds = pcm_seconds(data) if fmt == "pcm" else decoded_seconds(data)
    # Piper draws its phoneme durations at random, so lengths vary a little between calls.
    assert seconds == pytest.approx(reference, rel=0.25)
    if fmt != "pcm":
        text = client.audio.transcriptions.create(model="whisper-1", file=(f"a.{fmt}", data))
        assert words(text.text) == words(SENTENCE)


def test_every_transcription_format(client: openai.OpenAI, spoken: bytes) -> None:
    file = ("s.wav", spoken)
    text = client.audio.transcriptions.create(model="whisper-1", file=file, response_format="text")
    assert words(text) == words(SENTENCE)
    srt = client.audio.transcriptions.create(model="whisper-1", file=file, response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:0")
    assert words(srt.split("\n", 2)[2]) == words(SENTENCE)
    vtt = client.audio.transcriptions.create(model="whisper-1", file=file, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=file,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.language == "en"
    assert verbose.duration == pytest.approx(decoded_seconds(spoken), abs=0.1)
    assert verbose.segments is not None
    assert verbose.words is not None
    assert [w.word.lower().strip(".") for w in verbose.words] == words(SENTENCE)
    assert verbose.words[-1].end <= verbose.duration + 0.05
    assert verbose.segments[0].start == 0.0
    words_only = client.audio.transcriptions.create(
        model="whisper-1",
        file=file,
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    assert words_only.segments is None
    assert words_only.words is not None


# The client marks translations deprecated (OpenAI's newer models transcribe only); the route
# is still part of the API every Whisper server offers.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translation_of_english_speech_is_its_transcript(
    client: openai.OpenAI, spoken: bytes
) -> None:
    result = client.audio.translations.create(model="whisper-1", file=("s.wav", spoken))
    assert words(result.text) == words(SENTENCE)
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.translations.create(
            model="whisper-1", file=("s.wav", spoken), extra_body={"language": "en"}
        )
    assert caught.value.body["param"] == "language"  # type: ignore[index]


def test_streamed_transcription_sends_deltas_then_done(
    client: openai.OpenAI, spoken: bytes
) -> None:
    two = client.audio.speech.create(
        model="tts-1",
        voice=VOICE,
        input=SENTENCE + " The weather is nice today.",
        response_format="wav",
    ).content
    events = list(
        client.audio.transcriptions.create(model="whisper-1", file=("s.wav", two), stream=True)
    )
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done"
    assert types.count("transcript.text.delta") == len(types) - 1 >= 1
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert (
        words(deltas) == words(events[-1].text) == words(SENTENCE + " The weather is nice today.")
    )


def test_speech_as_server_sent_events(sup: Supervisor, spoken: bytes) -> None:
    body = {"model": "tts-1", "voice": VOICE, "input": SENTENCE, "stream_format": "sse"}
    body["response_format"] = "pcm"
    with sup.http() as http, http.stream("POST", "/v1/audio/speech", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    assert events[-1]["type"] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    assert pcm_seconds(audio) == pytest.approx(decoded_seconds(spoken), rel=0.25)


def test_bad_uploads_never_reach_the_model(
    client: openai.OpenAI, sup: Supervisor, tmp_path: Path
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"not audio" * 200))
    assert caught.value.body["code"] == "invalid_audio"  # type: ignore[index]
    assert caught.value.body["param"] == "file"  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as too_big:
        client.audio.transcriptions.create(
            model="whisper-1", file=("big.wav", b"\0" * (AUDIO_LIMIT + 1))
        )
    assert too_big.value.status_code == 413
    with pytest.raises(openai.BadRequestError) as unknown:
        client.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", b"RIFF"), extra_body={"chunking_strategy": "auto"}
        )
    assert unknown.value.body["param"] == "chunking_strategy"  # type: ignore[index]
    response = httpx.post(
        sup.base_url + "/v1/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"x": ("x", b"1")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"
    uploads = Path(sup.data_dir) / "uploads"
    assert not any(uploads.iterdir())  # every upload was deleted, refused or not


def test_speech_refusals(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as voice:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    assert voice.value.body["param"] == "voice"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as long:
        client.audio.speech.create(model="tts-1", voice=VOICE, input="word " * 1000)
    assert long.value.body["code"] == "input_too_long"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as instructions:
        client.audio.speech.create(model="tts-1", voice=VOICE, input="Hi.", instructions="whisper")
    assert instructions.value.body["param"] == "instructions"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as kind:
        client.audio.speech.create(model="whisper-1", voice=VOICE, input="Hi.")
    assert kind.value.body["code"] == "wrong_model_kind"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(
            model="whisper-1", messages=[{"role": "user", "content": "hi"}]
        )
    assert chat.value.body["code"] == "wrong_model_kind"  # type: ignore[index]


def test_models_and_voices_are_listed(client: openai.OpenAI, sup: Supervisor) -> None:
    models = {m.id: m for m in client.models.list()}
    assert models["whisper-tiny.en"].kind == "transcription"  # type: ignore[attr-defined]
    assert models["piper-en_US-joe-medium"].kind == "speech"  # type: ignore[attr-defined]
    voices = httpx.get(sup.base_url + "/v1/audio/voices").json()["data"]
    assert {"id": VOICE, "object": "voice", "model": "piper-en_US-joe-medium"} in voices


def test_metrics_count_audio_seconds_both_ways(client: openai.OpenAI, sup: Supervisor) -> None:
    spoken = client.audio.speech.create(
        model="tts-1", voice=VOICE, input=SENTENCE, response_format="wav"
    ).content
    client.audio.transcriptions.create(model="whisper-1", file=("s.wav", spoken))

    def seconds(model: str, direction: str) -> float:
        text = httpx.get(sup.base_url + "/metrics").text
        label = f'corral_audio_seconds_total{{direction="{direction}",model="{model}"}}'
        line = next((line for line in text.splitlines() if line.startswith(label)), None)
        return float(line.split()[-1]) if line else 0.0

    assert seconds("piper-en_US-joe-medium", "out") >= decoded_seconds(spoken) - 0.1
    assert seconds("whisper-tiny.en", "in") >= decoded_seconds(spoken) - 0.1


def test_analytics_rows_record_audio_seconds(client: openai.OpenAI, sup: Supervisor) -> None:
    started = time.time()  # earlier tests of this module made rows for the same paths
    spoken = client.audio.speech.create(
        model="tts-1", voice=VOICE, input=SENTENCE, response_format="mp3"
    ).content
    client.audio.transcriptions.create(model="whisper-1", file=("s.mp3", spoken))
    found: dict[str, dict[str, object]] = {}

    def rows() -> bool:
        summary = httpx.get(sup.base_url + "/admin/analytics/summary").json()
        for row in summary["events"]["items"]:
            if float(row["ts"]) >= started:
                found.setdefault(str(row["path"]), row)
        return {"/v1/audio/speech", "/v1/audio/transcriptions"} <= set(found)

    wait_until(rows, 30, "the analytics rows")
    speech, heard = found["/v1/audio/speech"], found["/v1/audio/transcriptions"]
    assert speech["model"] == "piper-en_US-joe-medium"
    assert speech["audio_seconds_out"] == pytest.approx(decoded_seconds(spoken), abs=0.2)
    assert heard["model"] == "whisper-tiny.en"
    assert heard["audio_seconds_in"] == pytest.approx(decoded_seconds(spoken), abs=0.2)
    assert heard["completion_tokens"] > 0
