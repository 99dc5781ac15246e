"""OpenAI's chat response and chunk stream, rendered as Anthropic's message and its events.

The stream is a small state machine over the chunks: one content block is open at a time
(text, or a tool call's ``tool_use``), closed when the other kind starts or the turn ends.
Token counts come from the usage chunk, which this dialect always asks for; Anthropic's
``message_start`` carries a prompt count before any is known, so it says 0 there and the
real counts go out in ``message_delta``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from corral.supervisor.anthropic.errors import error_body
from corral.supervisor.errors import BadGateway, CorralError
from corral.supervisor.openai.format import Dialect

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def message_id(openai_id: str) -> str:
    return "msg_" + openai_id.removeprefix("chatcmpl-")


def stop_reason(finish_reason: str | None, *, called: bool = False) -> str:
    """``called``: the answer holds tool calls. OpenAI says "stop" for a call it was made to
    make (a named ``tool_choice``); Anthropic says ``tool_use`` whenever the turn ends in one."""
    if called and finish_reason != "length":
        return "tool_use"
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def ending(choice: dict[str, Any], *, called: bool = False) -> dict[str, Any]:
    """``stop_reason`` and ``stop_sequence`` from an OpenAI choice's ``finish_reason`` and
    vLLM's ``stop_reason`` (the stop string that ended it, or null)."""
    reason = stop_reason(choice.get("finish_reason"), called=called)
    matched = choice.get("stop_reason")
    if reason == "end_turn" and isinstance(matched, str):
        return {"stop_reason": "stop_sequence", "stop_sequence": matched}
    return {"stop_reason": reason, "stop_sequence": None}


def usage(openai_usage: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic counts prompt tokens read from the cache apart from the others."""
    if not openai_usage:
        return {"input_tokens": 0, "output_tokens": 0}
    cached = (openai_usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {
        "input_tokens": openai_usage["prompt_tokens"] - cached,
        "output_tokens": openai_usage["completion_tokens"],
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise BadGateway("the model's tool call arguments are not a JSON object")
    return value


def full_message(response: dict[str, Any]) -> dict[str, Any]:
    choice = response["choices"][0]
    message = choice["message"]
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call["function"]
        content.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": tool_input(function["arguments"]),
            }
        )
    return {
        "id": message_id(response["id"]),
        "type": "message",
        "role": "assistant",
        "model": response["model"],
        "content": content,
        **ending(choice, called=bool(message.get("tool_calls"))),
        "usage": usage(response.get("usage")),
    }


def event(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


PING = event({"type": "ping"})


@dataclass
class _Blocks:
    """Which content block is open; OpenAI's tool call index -> Anthropic's block index."""

    count: int = 0
    open: str | None = None  # "text" or "tool_use"
    tools: dict[int, int] = field(default_factory=dict)

    def start(self, block: dict[str, Any]) -> list[bytes]:
        out = self.stop()
        self.open = block["type"]
        out.append(
            event({"type": "content_block_start", "index": self.count, "content_block": block})
        )
        self.count += 1
        return out

    def stop(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [event({"type": "content_block_stop", "index": self.count - 1})]

    def delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        at = self.count - 1 if index is None else index
        return event({"type": "content_block_delta", "index": at, "delta": delta})


def _chunk_events(chunk: dict[str, Any], blocks: _Blocks) -> list[bytes]:
    out: list[bytes] = []
    for choice in chunk["choices"]:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if text:
            if blocks.open != "text":
                out += blocks.start({"type": "text", "text": ""})
            out.append(blocks.delta({"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            if call["index"] not in blocks.tools:
                block = {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": function["name"],
                    "input": {},
                }
                out += blocks.start(block)
                blocks.tools[call["index"]] = blocks.count - 1
            if function.get("arguments"):
                fragment = {"type": "input_json_delta", "partial_json": function["arguments"]}
                out.append(blocks.delta(fragment, blocks.tools[call["index"]]))
    return out


async def message_events(
    chunks: AsyncGenerator[dict[str, Any] | None, None],
) -> AsyncGenerator[bytes, None]:
    """Anthropic's stream: ``message_start``, content blocks, ``message_delta``, ``message_stop``;
    a failure after the start is an ``error`` event (the status line has been sent)."""
    blocks = _Blocks()
    started = False
    finish: dict[str, Any] = {}  # the finishing choice
    counts: dict[str, Any] | None = None
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                if chunk is None:
                    yield PING
                    continue
                if not started:
                    started = True
                    yield event({"type": "message_start", "message": _empty_message(chunk)})
                    yield PING
                for piece in _chunk_events(chunk, blocks):
                    yield piece
                for choice in chunk["choices"]:
                    if choice.get("finish_reason"):
                        finish = choice
                if chunk.get("usage"):
                    counts = chunk["usage"]
        except CorralError as exc:
            yield event(error_body(exc))
            return
    for piece in blocks.stop():
        yield piece
    yield event(
        {
            "type": "message_delta",
            "delta": ending(finish, called=bool(blocks.tools)),
            "usage": usage(counts),
        }
    )
    yield event({"type": "message_stop"})


def _empty_message(chunk: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": message_id(chunk["id"]),
        "type": "message",
        "role": "assistant",
        "model": chunk["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


ANTHROPIC = Dialect(full=full_message, stream=message_events, headers={}, always_usage=True)


def token_count(response: dict[str, Any]) -> dict[str, Any]:
    return {"input_tokens": response["usage"]["prompt_tokens"]}


# count_tokens answers whole only (its requests never stream).
COUNT = Dialect(full=token_count, stream=message_events, headers={})
