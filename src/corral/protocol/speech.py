"""Speech messages: transcribe (whisper children) and speak (tts children).

Frames are limited to ``MAX_FRAME_BYTES`` (1 MiB) and an upload may be 25 MB, so audio never
travels to a child inside a frame: the supervisor writes the upload to a private temp file and
sends its path; the child reads it and deletes it when the request ends. Synthesised audio
comes back the other way as base64 chunks, each well under the frame limit
(``AUDIO_CHUNK_BYTES`` of encoded audio before base64).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

RequestId = Annotated[str, Field(min_length=1, max_length=128)]
AudioTask = Literal["transcribe", "translate"]
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
SpeechQuality = Literal["normal", "better", "best"]  # what each means: the tts backends
# Encoded audio per chunk frame: base64 makes it 4/3 larger, still far below 1 MiB.
AUDIO_CHUNK_BYTES = 256 << 10
SPEECH_SAMPLE_RATE = 24000  # OpenAI's pcm is 24 kHz 16-bit mono; every format uses that rate


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- supervisor -> child ---------------------------------------------------------------------


class Transcribe(_Message):
    """Transcribe (or translate into English) the audio file at ``path``, which the child
    deletes when the request ends, whatever its outcome."""

    type: Literal["transcribe"] = "transcribe"
    request_id: RequestId
    path: str = Field(min_length=1)
    task: AudioTask = "transcribe"
    language: str | None = Field(default=None, min_length=2, max_length=8)
    prompt: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    beam_size: int | None = Field(default=None, ge=1, le=16)
    vad_filter: bool = False
    word_timestamps: bool = False


class Speak(_Message):
    """Synthesise ``text`` and send it back encoded as ``format``, one sentence at a time."""

    type: Literal["speak"] = "speak"
    request_id: RequestId
    text: str = Field(min_length=1)
    voice: str | None = None
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    format: SpeechFormat = "mp3"
    language: str | None = Field(default=None, min_length=2, max_length=16)
    quality: SpeechQuality = "normal"


# --- child -> supervisor ---------------------------------------------------------------------


class TranscriptionStarted(_Message):
    """The file decoded as audio; segments follow. A file that is not audio is an ``error``
    frame with code ``invalid_audio`` instead."""

    type: Literal["transcription_started"] = "transcription_started"
    request_id: RequestId
    duration: float = Field(ge=0.0)  # seconds of audio in the file
    language: str
    language_probability: float = Field(ge=0.0, le=1.0)


class Word(_Message):
    start: float
    end: float
    word: str
    probability: float


class Segment(_Message):
    """One decoded segment, sent as soon as the decoder produced it."""

    type: Literal["segment"] = "segment"
    request_id: RequestId
    id: int = Field(ge=0)
    seek: int = Field(ge=0)
    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: tuple[Word, ...] = ()


class SpeechStarted(_Message):
    """The voice accepted the text; audio chunks follow."""

    type: Literal["speech_started"] = "speech_started"
    request_id: RequestId
    sample_rate: int = Field(gt=0)
    voice: str


class AudioChunk(_Message):
    """Encoded audio (base64), in order; ``seconds`` of speech it adds (0 for a trailer)."""

    type: Literal["audio_chunk"] = "audio_chunk"
    request_id: RequestId
    data: str
    seconds: float = Field(default=0.0, ge=0.0)
