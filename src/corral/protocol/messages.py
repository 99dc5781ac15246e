"""Every message of the supervisor <-> child protocol.

One JSON object per line; ``type`` names the message. Messages going to a child form the
``ToChild`` union and messages coming from a child the ``FromChild`` union. Request-scoped
messages carry a ``request_id`` chosen by the supervisor, so one child can hold several
requests at once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from corral.protocol.speech import (
    AudioChunk,
    Segment,
    Speak,
    SpeechStarted,
    Transcribe,
    TranscriptionStarted,
)

PROTOCOL_VERSION = 1

RequestId = Annotated[str, Field(min_length=1, max_length=128)]
FinishReason = Literal["stop", "length", "cancelled", "error"]
# Sampling bounds, shared with the API's request models so the two can never disagree.
MaxTokens = Annotated[int, Field(ge=1)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
TopK = Annotated[int, Field(ge=0)]
RepeatPenalty = Annotated[float, Field(ge=0.0)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
ChildKind = Literal["llama", "fake", "hf", "whisper", "tts", "download"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- shared payloads -----------------------------------------------------------------------


class ChatMessage(_Message):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = None


class SamplingParams(_Message):
    """Sampling settings; ``None`` means "the backend's default"."""

    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    repeat_penalty: RepeatPenalty | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logit_bias: dict[int, float] = Field(default_factory=dict)


class Usage(_Message):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


# --- supervisor -> child ---------------------------------------------------------------------


class Generate(_Message):
    """Generate text: from chat ``messages`` (templated by the child) or a raw ``prompt``."""

    type: Literal["generate"] = "generate"
    request_id: RequestId
    messages: tuple[ChatMessage, ...] | None = None
    prompt: str | None = None
    params: SamplingParams = SamplingParams()


class Cancel(_Message):
    type: Literal["cancel"] = "cancel"
    request_id: RequestId


class StatsRequest(_Message):
    type: Literal["stats_request"] = "stats_request"


class Shutdown(_Message):
    type: Literal["shutdown"] = "shutdown"


class DownloadStart(_Message):
    """Download one job from a hub (a download child holds exactly one job).

    ``files`` and ``include`` patterns add up; with neither, the whole repo. ``commit`` pins
    the job to what the supervisor planned (and a resumed job to its first attempt);
    ``revision`` is then only the ref recorded for it in the cache.
    """

    type: Literal["download_start"] = "download_start"
    job_id: RequestId
    repo: str
    revision: str | None = None
    commit: str | None = None
    files: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


# --- child -> supervisor ---------------------------------------------------------------------


class Hello(_Message):
    """First frame of every child, before anything else (also before a slow load)."""

    type: Literal["hello"] = "hello"
    protocol_version: int
    kind: ChildKind
    pid: int
    capabilities: tuple[str, ...] = ()


class LoadProgress(_Message):
    type: Literal["load_progress"] = "load_progress"
    progress: float = Field(ge=0.0, le=1.0)
    message: str = ""


class Ready(_Message):
    """The model is loaded; requests may be sent."""

    type: Literal["ready"] = "ready"
    model: str
    n_ctx: int = Field(ge=0)
    chat_template: bool = False


class Started(_Message):
    """A generate request was accepted: the prompt fits and prefill begins."""

    type: Literal["started"] = "started"
    request_id: RequestId
    prompt_tokens: int = Field(ge=0)


class Delta(_Message):
    """New text for one request; ``tokens`` counts how many tokens it holds (may be several)."""

    type: Literal["delta"] = "delta"
    request_id: RequestId
    text: str
    tokens: int = Field(ge=0)


class Done(_Message):
    type: Literal["done"] = "done"
    request_id: RequestId
    finish_reason: FinishReason
    usage: Usage


class Error(_Message):
    """A failure: of one request when ``request_id`` is set, of the whole child otherwise."""

    type: Literal["error"] = "error"
    request_id: RequestId | None = None
    code: str
    message: str


class Stats(_Message):
    type: Literal["stats"] = "stats"
    active_requests: int = Field(ge=0)
    queued_requests: int = Field(ge=0)
    tokens_generated: int = Field(ge=0)


class DownloadProgress(_Message):
    type: Literal["download_progress"] = "download_progress"
    job_id: RequestId
    bytes_done: int = Field(ge=0)
    bytes_total: int = Field(ge=0)
    bytes_per_second: float = Field(ge=0.0)
    files: dict[str, tuple[int, int]] = Field(default_factory=dict)


class DownloadFinished(_Message):
    """Every file is in the cache, verified; ``paths`` are the snapshot paths, in job order."""

    type: Literal["download_finished"] = "download_finished"
    job_id: RequestId
    paths: tuple[str, ...]
    commit: str | None = None


DownloadFailure = Literal[
    "not_found", "gated", "invalid", "checksum", "disk_full", "network", "cancelled", "error"
]


class DownloadFailed(_Message):
    """The job stopped; finished files stay in the cache, a partial one stays only to resume."""

    type: Literal["download_failed"] = "download_failed"
    job_id: RequestId
    reason: str
    code: DownloadFailure = "error"


ToChild = Annotated[
    Generate | Cancel | StatsRequest | Shutdown | DownloadStart | Transcribe | Speak,
    Field(discriminator="type"),
]
FromChild = Annotated[
    Hello
    | LoadProgress
    | Ready
    | Started
    | Delta
    | Done
    | Error
    | Stats
    | DownloadProgress
    | DownloadFinished
    | DownloadFailed
    | TranscriptionStarted
    | Segment
    | SpeechStarted
    | AudioChunk,
    Field(discriminator="type"),
]

TO_CHILD: TypeAdapter[ToChild] = TypeAdapter(ToChild)
FROM_CHILD: TypeAdapter[FromChild] = TypeAdapter(FromChild)
