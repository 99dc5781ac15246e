"""OpenAI response objects and their SSE encoding, from a generation's events."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from corral.protocol.messages import Delta, Done, Usage
from corral.protocol.tools import ToolCallDelta
from corral.supervisor.errors import CorralError
from corral.supervisor.http.sse import DONE_EVENT
from corral.supervisor.models.generation import Generation
from corral.supervisor.openai.choices import (
    Choice,
    ChoicePlan,
    Choices,
    chat_logprobs,
    completion_logprobs,
    tool_call_chunks,
)

Kind = Literal["chat", "completion"]
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
    return openai_reason(done.finish_reason)


def openai_reason(reason: str) -> str:
    # A cancelled generation ended early like a stop; OpenAI knows no "cancelled".
    return reason if reason in ("length", "tool_calls") else "stop"


def chat_message(choice: Choice) -> dict[str, Any]:
    """A whole answer's ``message``: its content is null when it only calls tools."""
    if not choice.calls:
        return {"role": "assistant", "content": choice.text}
    content = choice.text if choice.text.strip() else None
    return {"role": "assistant", "content": content, "tool_calls": choice.calls}


@dataclass(frozen=True)
class ResponseIds:
    kind: Kind
    id: str
    model: str
    created: int
    fingerprint: str | None = None
    plan: ChoicePlan = field(default_factory=ChoicePlan)

    @classmethod
    def new(
        cls,
        kind: Kind,
        request_id: str,
        model: str,
        *,
        fingerprint: str | None = None,
        plan: ChoicePlan | None = None,
    ) -> ResponseIds:
        prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
        return cls(
            kind, prefix + request_id, model, int(time.time()), fingerprint, plan or ChoicePlan()
        )

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
        }

    def full_choices(self, choices: list[Choice], done: Done) -> dict[str, Any]:
        rendered = []
        for c in choices:
            reason = openai_reason(c.finish_reason) if c.finish_reason else finish_reason(done)
            logprobs = None
            if self.plan.logprobs:
                logprobs = (
                    chat_logprobs(c.logprobs)
                    if self.kind == "chat"
                    else completion_logprobs(c.logprobs, 0)
                )
            body: dict[str, Any] = (
                {"message": chat_message(c)} if self.kind == "chat" else {"text": c.text}
            )
            rendered.append(
                {
                    "index": c.index,
                    **body,
                    "logprobs": logprobs,
                    "finish_reason": reason,
                    # vLLM's field: the stop string that ended the choice, or null.
                    "stop_reason": c.stop_sequence,
                }
            )
        obj = "chat.completion" if self.kind == "chat" else "text_completion"
        return {**self._envelope(obj), "choices": rendered, "usage": usage_dict(done.usage)}

    def chunk(
        self,
        text: str | None,
        reason: str | None = None,
        *,
        role: bool = False,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
        calls: tuple[ToolCallDelta, ...] = (),
        stop: str | None = None,
    ) -> dict[str, Any]:
        """``stop``: with ``reason``, the stop string that ended the choice (``stop_reason``,
        which vLLM sends on a choice's finishing chunk only)."""
        ends = {} if reason is None else {"stop_reason": stop}
        if self.kind == "chat":
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None and (text or not calls):
                delta["content"] = text
            if calls:
                delta["tool_calls"] = tool_call_chunks(calls)
            choice: dict[str, Any] = {
                "index": index,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": reason,
                **ends,
            }
            return {**self._envelope("chat.completion.chunk"), "choices": [choice]}
        choice = {
            "index": index,
            "text": text or "",
            "logprobs": logprobs,
            "finish_reason": reason,
            **ends,
        }
        return {**self._envelope("text_completion"), "choices": [choice]}

    def delta_logprobs(self, delta: Delta, offset: int) -> dict[str, Any] | None:
        if not self.plan.logprobs or not delta.logprobs:
            return None
        if self.kind == "chat":
            return chat_logprobs(delta.logprobs)
        return completion_logprobs(delta.logprobs, offset)

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._envelope(obj), "choices": [], "usage": usage_dict(usage)}


async def collect_choices(generation: Generation) -> tuple[Choices, Done]:
    choices = Choices()
    async for delta in generation.deltas():
        if delta is not None:
            choices.add(delta)
    assert generation.done is not None
    return choices, generation.done


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
    count = ids.plan.count
    if ids.kind == "chat":
        for index in range(count):
            yield ids.chunk("", role=True, index=index)
    ended: set[int] = set()
    offsets: dict[int, int] = {}  # characters sent per choice, for text_offset
    async for delta in generation.deltas(ping_interval=ping_interval):
        if delta is None:
            yield None
            continue
        if on_text is not None and delta.index == 0:  # a stored conversation keeps choice 0
            on_text(delta.text)
        if delta.text or delta.logprobs or delta.tool_calls:
            offset = offsets.get(delta.index, 0)
            offsets[delta.index] = offset + len(delta.text)
            logprobs = ids.delta_logprobs(delta, offset)
            yield ids.chunk(
                delta.text, index=delta.index, logprobs=logprobs, calls=delta.tool_calls
            )
        if delta.finish_reason is not None and delta.index not in ended:
            ended.add(delta.index)
            end = None if ids.kind == "chat" else ""
            reason = openai_reason(delta.finish_reason)
            yield ids.chunk(end, reason, index=delta.index, stop=delta.stop_sequence)
    done = generation.done
    assert done is not None
    for index in range(count):  # choices whose child did not say how each ended
        if index not in ended:
            yield ids.chunk(None if ids.kind == "chat" else "", finish_reason(done), index=index)
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
    framing: Literal["sse", "ndjson"] = "sse"
    """How a resumable stream stores and replays ``stream``'s bytes (``streams.framing``)."""


OPENAI = Dialect(full=lambda response: response, stream=sse_events, headers={})
