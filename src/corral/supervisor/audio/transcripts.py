"""A finished transcript in each of OpenAI's response formats, and its streamed events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from corral.protocol.speech import Segment, TranscriptionStarted


@dataclass
class Transcript:
    task: str
    info: TranscriptionStarted
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    def usage(self) -> dict[str, Any]:
        return {"type": "duration", "seconds": round(self.info.duration, 3)}


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks)


def vtt(transcript: Transcript) -> str:
    blocks = [
        f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text.strip()}\n"
        for s in transcript.segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def verbose(transcript: Transcript, granularities: frozenset[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": transcript.info.language,
        "duration": round(transcript.info.duration, 3),
        "text": transcript.text,
        "usage": transcript.usage(),
    }
    if "segment" in granularities:
        body["segments"] = [
            s.model_dump(exclude={"type", "request_id", "words"}) for s in transcript.segments
        ]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end}
            for s in transcript.segments
            for w in s.words
        ]
    return body


def render(transcript: Transcript, fmt: str, granularities: frozenset[str]) -> tuple[str, str]:
    """(body, content type) of ``transcript`` as ``fmt``."""
    if fmt == "text":
        return transcript.text + "\n", "text/plain"
    if fmt == "srt":
        return srt(transcript), "application/x-subrip"
    if fmt == "vtt":
        return vtt(transcript), "text/vtt"
    if fmt == "verbose_json":
        return json.dumps(verbose(transcript, granularities)), "application/json"
    return json.dumps({"text": transcript.text, "usage": transcript.usage()}), "application/json"


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta_event(segment: Segment) -> bytes:
    return sse_event({"type": "transcript.text.delta", "delta": segment.text})


def done_event(transcript: Transcript) -> bytes:
    return sse_event(
        {"type": "transcript.text.done", "text": transcript.text, "usage": transcript.usage()}
    )
