"""Speech frames: round trips, and audio chunks that stay under the frame limit."""

from __future__ import annotations

import base64

import pytest
from pydantic import BaseModel, ValidationError

from corral.protocol import FROM_CHILD, MAX_FRAME_BYTES, TO_CHILD, decode, encode
from corral.protocol.speech import (
    AUDIO_CHUNK_BYTES,
    AudioChunk,
    Segment,
    Speak,
    SpeechStarted,
    Transcribe,
    TranscriptionStarted,
    Word,
)

TO_CHILD_EXAMPLES: list[BaseModel] = [
    Transcribe(
        request_id="t1",
        path="/tmp/upload-1.webm",
        task="translate",
        language="de",
        prompt="Corral, llama",
        temperature=0.2,
        beam_size=3,
        vad_filter=True,
        word_timestamps=True,
    ),
    Transcribe(request_id="t2", path="/tmp/x"),
    Speak(request_id="s1", text="Hello there. How are you?", voice="joe", speed=1.5, format="opus"),
    Speak(request_id="s2", text="Bonjour.", voice="p225", language="fr", quality="best"),
]
FROM_CHILD_EXAMPLES: list[BaseModel] = [
    TranscriptionStarted(request_id="t1", duration=3.5, language="en", language_probability=0.9),
    Segment(
        request_id="t1",
        id=0,
        seek=0,
        start=0.0,
        end=1.2,
        text=" Hello.",
        tokens=(50364, 2425),
        words=(Word(start=0.0, end=0.5, word=" Hello.", probability=0.8),),
    ),
    SpeechStarted(request_id="s1", sample_rate=24000, voice="joe"),
    AudioChunk(request_id="s1", data=base64.b64encode(b"\x00\x01").decode(), seconds=0.1),
]


@pytest.mark.parametrize("message", TO_CHILD_EXAMPLES, ids=lambda m: m.type)
def test_to_child_round_trip(message: BaseModel) -> None:
    assert decode(TO_CHILD, encode(message)[:-1]) == message


@pytest.mark.parametrize("message", FROM_CHILD_EXAMPLES, ids=lambda m: m.type)
def test_from_child_round_trip(message: BaseModel) -> None:
    assert decode(FROM_CHILD, encode(message)[:-1]) == message


def test_a_full_audio_chunk_fits_in_one_frame() -> None:
    data = base64.b64encode(b"\xff" * AUDIO_CHUNK_BYTES).decode()
    line = encode(AudioChunk(request_id="r" * 128, data=data, seconds=10.0))
    assert len(line) < MAX_FRAME_BYTES


@pytest.mark.parametrize(
    "bad",
    [
        {"speed": 5.0},
        {"speed": 0.1},
        {"format": "ogg"},
        {"text": ""},
        {"quality": "ultra"},
        {"language": "x"},
    ],
)
def test_speak_refuses_values_out_of_range(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Speak.model_validate({"request_id": "s", "text": "hi", **bad})


def test_transcribe_bounds_temperature_and_beam() -> None:
    with pytest.raises(ValidationError):
        Transcribe(request_id="t", path="/x", temperature=1.5)
    with pytest.raises(ValidationError):
        Transcribe(request_id="t", path="/x", beam_size=0)
