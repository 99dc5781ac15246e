"""The audio requests as OpenAI sends them, parsed at the edge into protocol messages.

Unlike chat bodies, audio requests refuse unknown fields: each of them (``chunking_strategy``,
``include[]``, ``instructions``...) would change what OpenAI returns, and silently dropping one
would answer a different question than the one asked.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from corral.protocol.speech import AudioTask, Speak, SpeechFormat, SpeechQuality, Transcribe
from corral.supervisor.errors import BadRequest

TranscriptFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Granularity = Literal["word", "segment"]
LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")]
MAX_PROMPT_CHARS = 4096


class TranscriptionForm(BaseModel):
    """The multipart fields besides ``file``; ``beam_size`` and ``vad_filter`` are Corral's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(default=None, max_length=256)
    language: LanguageCode | None = None
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    response_format: TranscriptFormat = "json"
    timestamp_granularities: tuple[Granularity, ...] = Field(
        default=(), alias="timestamp_granularities[]"
    )
    stream: bool = False
    beam_size: int | None = Field(default=None, ge=1, le=16)
    vad_filter: bool = False

    def check(self) -> None:
        """Combinations OpenAI refuses, refused the same way."""
        if self.timestamp_granularities and self.response_format != "verbose_json":
            raise BadRequest(
                "timestamp_granularities[] needs response_format verbose_json",
                param="timestamp_granularities[]",
            )
        if self.stream and self.response_format not in ("json", "text"):
            raise BadRequest(
                f"stream=true sends transcript.text events; response_format "
                f"{self.response_format} cannot be streamed (use json or text)",
                param="stream",
            )

    @property
    def granularities(self) -> frozenset[str]:
        return frozenset(self.timestamp_granularities or ("segment",))

    def to_transcribe(self, request_id: str, path: str, task: AudioTask) -> Transcribe:
        return Transcribe(
            request_id=request_id,
            path=path,
            task=task,
            language=self.language,
            prompt=self.prompt,
            temperature=self.temperature,
            beam_size=self.beam_size,
            vad_filter=self.vad_filter,
            word_timestamps="word" in self.granularities and self.response_format == "verbose_json",
        )


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(default=None, max_length=256)
    input: str = Field(min_length=1)
    voice: str | None = Field(default=None, max_length=128)
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    response_format: SpeechFormat = "mp3"
    stream_format: Literal["audio", "sse"] = "audio"
    # Corral's own: the language of a multilingual model, and a quality preset.
    language: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
    quality: SpeechQuality = "normal"

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input has no text to speak")
        return value

    def to_speak(self, request_id: str, voice: str | None) -> Speak:
        return Speak(
            request_id=request_id,
            text=self.input,
            voice=voice,
            speed=self.speed,
            format=self.response_format,
            language=self.language,
            quality=self.quality,
        )


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def parse_form(fields: dict[str, list[str]]) -> TranscriptionForm:
    """The form's text fields; a repeated field is an error unless it is a list field."""
    data: dict[str, object] = {}
    for name, values in fields.items():
        if name == "timestamp_granularities[]":
            data[name] = tuple(values)
        elif len(values) > 1:
            raise BadRequest(f"{name} is given {len(values)} times", param=name)
        elif name in ("stream", "vad_filter"):
            flag = _BOOLEANS.get(values[0].strip().lower())
            if flag is None:
                raise BadRequest(f"{name} must be true or false", param=name)
            data[name] = flag
        else:
            data[name] = values[0]
    try:
        form = TranscriptionForm.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = str(first["loc"][0]) if first["loc"] else None
        raise BadRequest(
            f"{where}: {first['msg']}" if where else first["msg"], param=where
        ) from None
    form.check()
    return form
