"""OpenAI response objects and their SSE encoding, from a generation's events."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from corral.protocol.messages import Done, Usage
from corral.supervisor.errors import CorralError
from corral.supervisor.models.generation import Generation

Kind = Literal["chat", "completion"]
DONE_EVENT = b"data: [DONE]\n\n"
PING = b": ping\n\n"


def sse_event(payload: Any) -> bytes:
    return (
        b"data: "
        + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        + b"\n\n"
    )


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        # OpenAI's field for prompt tokens served from the cache (the child's KV slot here).
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def finish_reason(done: Done) -> str:
    # OpenAI knows only stop/length; a cancelled generation ended early like a stop.
    return "length" if done.finish_reason == "length" else "stop"


@dataclass(frozen=True)
class ResponseIds:
    kind: Kind
    id: str
    model: str
    created: int

    @classmethod
    def new(cls, kind: Kind, request_id: str, model: str) -> ResponseIds:
        prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
        return cls(kind, prefix + request_id, model, int(time.time()))

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def full(self, text: str, done: Done) -> dict[str, Any]:
        if self.kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason(done),
            }
            body = self._envelope("chat.completion")
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": finish_reason(done),
            }
            body = self._envelope("text_completion")
        return {**body, "choices": [choice], "usage": usage_dict(done.usage)}

    def chunk(
        self, text: str | None, reason: str | None = None, *, role: bool = False
    ) -> dict[str, Any]:
        if self.kind == "chat":
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": reason,
            }
            return {**self._envelope("chat.completion.chunk"), "choices": [choice]}
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}
        return {**self._envelope("text_completion"), "choices": [choice]}

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._envelope(obj), "choices": [], "usage": usage_dict(usage)}


async def collect(generation: Generation) -> tuple[str, Done]:
    parts: list[str] = []
    async for delta in generation.deltas():
        if delta is not None:
            parts.append(delta.text)
    assert generation.done is not None
    return "".join(parts), generation.done


async def chunks(
    generation: Generation,
    ids: ResponseIds,
    *,
    include_usage: bool,
    ping_interval: float,
    on_text: Callable[[str], None] | None = None,
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """A streaming response as OpenAI chunk objects, ``None`` after ``ping_interval`` idle.

    This is the one internal stream every dialect renders (SSE here; Ollama, Anthropic and
    Responses in their translators). A failure after the start raises ``CorralError``: each
    encoder says it its own way, since the status line has already been sent.
    """
    if ids.kind == "chat":
        yield ids.chunk("", role=True)
    async for delta in generation.deltas(ping_interval=ping_interval):
        if delta is not None and on_text is not None:
            on_text(delta.text)
        yield None if delta is None else ids.chunk(delta.text)
    done = generation.done
    assert done is not None
    yield ids.chunk(None if ids.kind == "chat" else "", finish_reason(done))
    if include_usage:
        yield ids.usage_chunk(done.usage)


async def sse_events(
    events: AsyncGenerator[dict[str, Any] | None, None],
) -> AsyncGenerator[bytes, None]:
    """OpenAI's encoding of ``chunks``: one SSE event each, ``: ping`` when idle, ``[DONE]``.

    Errors after the stream started go out as an error event followed by ``[DONE]``, since
    the status line has already been sent.
    """
    async with contextlib.aclosing(events):
        try:
            async for chunk in events:
                yield PING if chunk is None else sse_event(chunk)
        except CorralError as exc:
            yield sse_event(exc.body())
    yield DONE_EVENT


@dataclass(frozen=True)
class Dialect:
    """How one API speaks a generation, rendered from OpenAI's objects: the whole response
    (``full``) and the streaming body (``stream``, over ``chunks``). Ollama, Anthropic and
    Responses are translators of this shape over the same internal request."""

    full: Callable[[dict[str, Any]], dict[str, Any]]
    stream: Callable[[AsyncGenerator[dict[str, Any] | None, None]], AsyncGenerator[bytes, None]]
    headers: Mapping[str, str]
    always_usage: bool = False
    """Ask ``chunks`` for the usage chunk whatever the request said (dialects that always
    report token counts)."""


OPENAI = Dialect(full=lambda response: response, stream=sse_events, headers={})
