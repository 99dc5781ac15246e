"""OpenAI's chat chunk stream, rendered as the Responses API's semantic events.

Every event carries a ``sequence_number``; an output item (the message's text, or one
function call) opens with ``response.output_item.added`` and closes with its ``.done``
events when the next item starts or the response ends; the last event is
``response.completed`` (``response.incomplete`` when ``max_output_tokens`` cut it short).
There is no ``[DONE]``: a failure after the start is an ``error`` event.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from corral.supervisor.errors import CorralError
from corral.supervisor.openai.format import PING, Dialect
from corral.supervisor.responses.objects import (
    Echo,
    call_item,
    message_item,
    output_text,
    response_id,
)
from corral.supervisor.responses.schemas import ResponsesRequest


@dataclass
class _Open:
    """The output item being streamed."""

    item: dict[str, Any]
    index: int
    text: list[str] = field(default_factory=list)


@dataclass
class _Stream:
    echo: Echo
    seq: int = 0
    rid: str = ""
    created: int = 0
    model: str = ""
    openai_id: str = ""
    items: list[dict[str, Any]] = field(default_factory=list)
    open: _Open | None = None
    calls: dict[int, int] = field(default_factory=dict)  # OpenAI tool call index -> output
    finish: str | None = None
    usage: dict[str, Any] | None = None

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return f"event: {kind}\ndata: {data}\n\n".encode()

    def response(self, finish: str | None) -> dict[str, Any]:
        return self.echo.response(
            self.openai_id,
            self.created,
            self.model,
            output=self.items,
            finish_reason=finish,
            openai_usage=self.usage,
        )

    def begin(self, chunk: dict[str, Any]) -> list[bytes]:
        self.openai_id, self.created, self.model = chunk["id"], chunk["created"], chunk["model"]
        self.rid = response_id(self.openai_id).removeprefix("resp_")
        running = self.response(None)
        return [
            self.event("response.created", response=running),
            self.event("response.in_progress", response=running),
        ]

    def text(self, delta: str) -> list[bytes]:
        out = self.open_message()
        assert self.open is not None
        self.open.text.append(delta)
        out.append(
            self.event("response.output_text.delta", **_where(self.open), delta=delta, logprobs=[])
        )
        return out

    def open_message(self) -> list[bytes]:
        if self.open is not None and self.open.item["type"] == "message":
            return []
        out = self.close()
        index = len(self.items)
        item = message_item(self.rid, index, "", "in_progress")
        self.open = _Open(item, index)
        out.append(self.event("response.output_item.added", output_index=index, item=item))
        out.append(self._part("response.content_part.added", self.open, output_text("")))
        return out

    def call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        function = call.get("function") or {}
        if call["index"] not in self.calls:
            out += self.close()
            index = len(self.items)
            item = call_item(self.rid, index, call["id"], function["name"], "", "in_progress")
            self.open = _Open(item, index)
            self.calls[call["index"]] = index
            out.append(self.event("response.output_item.added", output_index=index, item=item))
        arguments = function.get("arguments")
        if arguments and self.open is not None:
            self.open.text.append(arguments)
            out.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=self.open.item["id"],
                    output_index=self.open.index,
                    delta=arguments,
                )
            )
        return out

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        opened, self.open = self.open, None
        text = "".join(opened.text)
        item = opened.item
        out: list[bytes] = []
        if item["type"] == "message":
            out.append(
                self.event("response.output_text.done", **_where(opened), text=text, logprobs=[])
            )
            out.append(self._part("response.content_part.done", opened, output_text(text)))
            # Cut short by max_output_tokens, the message is incomplete, as in OpenAI's.
            status = "incomplete" if self.finish == "length" else "completed"
            done = message_item(self.rid, opened.index, text, status)
        else:
            out.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=opened.index,
                    name=item["name"],
                    arguments=text,
                )
            )
            done = {**item, "arguments": text, "status": "completed"}
        self.items.append(done)
        out.append(self.event("response.output_item.done", output_index=opened.index, item=done))
        return out

    def end(self) -> list[bytes]:
        out = self.close()
        if not self.items:  # an empty answer is still a message, as in the whole response
            out += self.open_message()
            out += self.close()
        final = self.response(self.finish or "stop")
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        out.append(self.event(kind, response=final))
        return out

    def _part(self, kind: str, opened: _Open, part: dict[str, Any]) -> bytes:
        return self.event(kind, **_where(opened), part=part)


def _where(opened: _Open) -> dict[str, Any]:
    return {"item_id": opened.item["id"], "output_index": opened.index, "content_index": 0}


def dialect_for(body: ResponsesRequest) -> Dialect:
    echo = Echo(body)

    async def stream(
        chunks: AsyncGenerator[dict[str, Any] | None, None],
    ) -> AsyncGenerator[bytes, None]:
        state = _Stream(echo)
        async with contextlib.aclosing(chunks):
            try:
                async for chunk in chunks:
                    if chunk is None:
                        yield PING
                        continue
                    if not state.openai_id:
                        for piece in state.begin(chunk):
                            yield piece
                    for piece in _chunk_events(state, chunk):
                        yield piece
            except CorralError as exc:
                yield state.event(
                    "error", code=exc.code or exc.type, message=exc.message, param=exc.param
                )
                return
        for piece in state.end():
            yield piece

    return Dialect(full=echo.full, stream=stream, headers={}, always_usage=True)


def _chunk_events(state: _Stream, chunk: dict[str, Any]) -> list[bytes]:
    out: list[bytes] = []
    if chunk.get("usage"):
        state.usage = chunk["usage"]
    for choice in chunk["choices"]:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            out += state.text(delta["content"])
        for call in delta.get("tool_calls") or []:
            out += state.call(call)
        state.finish = choice.get("finish_reason") or state.finish
    return out
