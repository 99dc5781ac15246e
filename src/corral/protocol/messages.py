"""Every message of the supervisor <-> child protocol.

One JSON object per line; ``type`` names the message. Messages going to a child form the
``ToChild`` union and messages coming from a child the ``FromChild`` union. Request-scoped
messages carry a ``request_id`` chosen by the supervisor, so one child can hold several
requests at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from corral.protocol.speech import (
    AudioChunk,
    Segment,
    Speak,
    SpeechStarted,
    Transcribe,
    TranscriptionStarted,
)
from corral.protocol.tools import Tool, ToolCall, ToolCallDelta, ToolChoice

PROTOCOL_VERSION = 1

RequestId = Annotated[str, Field(min_length=1, max_length=128)]
FinishReason = Literal["stop", "length", "cancelled", "error", "tool_calls"]
# Sampling bounds, shared with the API's request models so the two can never disagree.
MaxTokens = Annotated[int, Field(ge=1)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
TopK = Annotated[int, Field(ge=0)]
RepeatPenalty = Annotated[float, Field(ge=0.0)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


def bounds_of(bounded: object) -> dict[str, float]:
    """``{"min": .., "max": ..}`` of one of the bounded types above, for clients to show."""
    found: dict[str, float] = {}
    for meta in getattr(bounded, "__metadata__", ()):
        for item in getattr(meta, "metadata", ()):
            if (low := getattr(item, "ge", None)) is not None:
                found["min"] = low
            if (high := getattr(item, "le", None)) is not None:
                found["max"] = high
    return found


ChildKind = Literal["llama", "fake", "hf", "whisper", "tts", "download", "remote"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- shared payloads -----------------------------------------------------------------------


class ChatMessage(_Message):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    """An assistant turn's calls (its content is then often empty: the template sees null)."""
    tool_call_id: str | None = None
    """A ``tool`` turn: the call whose result this is."""


class TopLogprob(_Message):
    """One of the likeliest tokens at a position, by the model's own distribution."""

    token: str
    logprob: float
    bytes: tuple[int, ...] = ()


class TokenLogprob(_Message):
    """A generated token's log-probability and, when asked, the likeliest alternatives."""

    token: str
    logprob: float
    bytes: tuple[int, ...] = ()
    top: tuple[TopLogprob, ...] = ()


CompletionPrompt = str | tuple[int, ...]
"""A completion prompt: text, or token ids as OpenAI's completions accept."""


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
    cached_tokens: int = Field(default=0, ge=0)
    """Prompt tokens whose KV was already in the child (not decoded again)."""


# --- supervisor -> child ---------------------------------------------------------------------


class Generate(_Message):
    """Generate text: from chat ``messages`` (templated by the child) or a raw ``prompt``."""

    type: Literal["generate"] = "generate"
    request_id: RequestId
    messages: tuple[ChatMessage, ...] | None = None
    prompt: str | None = None
    params: SamplingParams = SamplingParams()
    cache_key: RequestId | None = None
    """The conversation this request continues (X-Conversation-Id): its KV slot is reused."""
    grammar: str | None = None
    """GBNF the completion must match (root rule ``root``)."""
    json_schema: dict[str, Any] | None = None
    """A JSON schema the completion must match; compiled to a grammar in the child."""
    grammar_triggers: tuple[str, ...] = ()
    """Regex patterns: with any, the grammar is lazy and applies from the first match on."""
    continue_final: bool = False
    """The last message is a partial assistant answer to go on with (no new assistant turn)."""
    n: int = Field(default=1, ge=1, le=64)
    """Choices per prompt, decoded as parallel sequences sharing the prompt's KV."""
    logprobs: int | None = Field(default=None, ge=0, le=20)
    """Report each token's log-probability, with this many top alternatives; None: none."""
    prompts: tuple[CompletionPrompt, ...] = ()
    """Completion prompts (text or token ids), each with ``n`` choices of index
    ``prompt_i * n + j``; instead of ``prompt`` for token prompts and batches."""
    echo: bool = False
    """Each choice's text starts with its prompt (completions)."""
    suffix: str | None = None
    """Fill in the middle between the prompt and this text (models with FIM tokens)."""
    tools: tuple[Tool, ...] = ()
    """Functions the chat template is shown and the model may call (``Delta.tool_calls``)."""
    tool_choice: ToolChoice = "auto"
    """``none``: no calls; ``auto``: the model decides; ``required``/a name: it must call."""
    parallel_tool_calls: bool = True
    """Several calls in one answer; False: at most one."""


class Embed(_Message):
    """Embed each input: ``texts``, or ``token_ids`` (lists of token ids) for backends that
    take them. Answered by ``started``, ``embeddings`` chunks in input order, then ``done``."""

    type: Literal["embed"] = "embed"
    request_id: RequestId
    texts: tuple[str, ...] = ()
    token_ids: tuple[tuple[int, ...], ...] = ()
    dimensions: int | None = Field(default=None, ge=1)


class Rerank(_Message):
    """Score each document against ``query`` (a cross-encoder). Answered by ``started``, one
    ``scores`` frame, then ``done``."""

    type: Literal["rerank"] = "rerank"
    request_id: RequestId
    query: str
    documents: tuple[str, ...]


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
    parallel: int = Field(default=1, ge=1)
    """Requests the child decodes at once (its slots); more wait in the child, in order."""


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
    index: int = Field(default=0, ge=0)
    """The choice this text belongs to (``n`` and batch prompts)."""
    logprobs: tuple[TokenLogprob, ...] = ()
    """One per token in ``tokens``, when the request asked for logprobs."""
    finish_reason: FinishReason | None = None
    """Set on a choice's last delta, when its sequence ended (the ``done`` frame ends all)."""
    stop_sequence: str | None = None
    """With ``finish_reason``: the request's stop string (``params.stop``) that ended the
    choice; None when something else did (an end token, a template's end of turn, a limit)."""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    """Tool calls parsed from the model's output; their markup is not in ``text``."""


class Embeddings(_Message):
    """Vectors ``start``, ``start + 1``, ... of an ``embed`` request, each the base64 of its
    little-endian float32 values (exact, and a third of the size of JSON numbers)."""

    type: Literal["embeddings"] = "embeddings"
    request_id: RequestId
    start: int = Field(ge=0)
    vectors: tuple[str, ...]


class Scores(_Message):
    """A ``rerank`` request's relevance scores, one per document in request order."""

    type: Literal["scores"] = "scores"
    request_id: RequestId
    scores: tuple[float, ...]


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
    param: str | None = None
    """The request field at fault, when the child can name it."""


class UpstreamHealth(_Message):
    """One upstream replica of a remote child, as the child last saw it."""

    url: str
    """The replica's base URL, without credentials."""
    healthy: bool
    """False while it is ejected (it failed to connect, answered 5xx or broke off a stream)."""
    outstanding: int = Field(default=0, ge=0)
    last_error: str | None = None


class Stats(_Message):
    type: Literal["stats"] = "stats"
    active_requests: int = Field(ge=0)
    queued_requests: int = Field(ge=0)
    tokens_generated: int = Field(ge=0)
    slots_busy: int = Field(default=0, ge=0)
    slots_total: int = Field(default=0, ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    """Prompt tokens served from the KV cache since the child started."""
    kv_parked_bytes: int = Field(default=0, ge=0)
    """Idle conversations' KV held in host memory."""
    upstreams: tuple[UpstreamHealth, ...] = ()
    """A remote child's replicas and their health (empty for engines that run here)."""


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
    Generate
    | Embed
    | Rerank
    | Cancel
    | StatsRequest
    | Shutdown
    | DownloadStart
    | Transcribe
    | Speak,
    Field(discriminator="type"),
]
FromChild = Annotated[
    Hello
    | LoadProgress
    | Ready
    | Started
    | Delta
    | Embeddings
    | Scores
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
