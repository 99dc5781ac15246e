"""OpenAI's response objects as Ollama's: the whole answer as one JSON object, a stream as
NDJSON (one object a line, the last with ``done: true``, the reason and the counts).

Durations are nanoseconds, as Ollama reports them, measured from the request's arrival:
``load_duration`` is the wait for a model that was not loaded yet, ``eval_duration`` the
time from the first generated token to the last, and ``prompt_eval_duration`` the rest
(reading the prompt, and any wait for a free slot).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from corral.supervisor.errors import BadGateway, CorralError
from corral.supervisor.openai.format import Dialect

Api = Literal["chat", "generate"]
NDJSON = {"Content-Type": "application/x-ndjson"}


def timestamp(at: float | None = None) -> str:
    """RFC 3339 in UTC, as Ollama's ``created_at`` and ``modified_at``."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.isoformat().replace("+00:00", "Z")


def line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _ns(seconds: float) -> int:
    return max(0, int(seconds * 1e9))


@dataclass
class Timing:
    """When the request arrived, and whether it found its model loaded."""

    loaded_before: bool
    loaded_since: Callable[[], float | None]  # when the model became ready, wall clock
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    first_token: float | None = None

    def durations(self, eval_seconds: float) -> dict[str, int]:
        total = time.monotonic() - self.started
        load = 0.0
        if not self.loaded_before and (since := self.loaded_since()) is not None:
            load = min(total, max(0.0, since - self.started_wall))
        evaluating = min(max(0.0, eval_seconds), total - load)
        return {
            "total_duration": _ns(total),
            "load_duration": _ns(load),
            "prompt_eval_duration": _ns(total - load - evaluating),
            "eval_duration": _ns(evaluating),
        }

    def streamed_eval_seconds(self) -> float:
        return 0.0 if self.first_token is None else time.monotonic() - self.first_token


@dataclass(frozen=True)
class Shape:
    api: Api
    model: str  # the name as the client sent it, which Ollama echoes
    timing: Timing

    def envelope(self) -> dict[str, Any]:
        return {"model": self.model, "created_at": timestamp()}

    def piece(self, text: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if self.api == "generate":
            return {"response": text}
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {"message": message}

    def final(
        self, reason: str, usage: dict[str, Any] | None, eval_seconds: float | None
    ) -> dict[str, Any]:
        usage = usage or {}
        obj: dict[str, Any] = {
            "done": True,
            "done_reason": "length" if reason == "length" else "stop",
            "prompt_eval_count": usage.get("prompt_tokens", 0),
            "eval_count": usage.get("completion_tokens", 0),
        }
        if eval_seconds is not None:
            obj.update(self.timing.durations(eval_seconds))
        return obj


def ollama_dialect(shape: Shape) -> Dialect:
    return Dialect(
        full=lambda response: full(shape, response),
        stream=lambda events: stream(shape, events),
        headers=NDJSON,
        always_usage=True,
        framing="ndjson",
    )


def full(shape: Shape, response: dict[str, Any]) -> dict[str, Any]:
    """The whole answer; its durations are added by the handler once the generation's
    timings are known (``Timing.durations``)."""
    choice = response["choices"][0]
    if shape.api == "chat" or "message" in choice:
        message = choice.get("message") or {}
        text = message.get("content") or ""
        calls = [tool_call(c, i) for i, c in enumerate(message.get("tool_calls") or [])]
    else:
        text, calls = choice.get("text") or "", []
    obj = {**shape.envelope(), **shape.piece(text, calls)}
    obj.update(shape.final(choice.get("finish_reason") or "stop", response.get("usage"), None))
    if (logprobs := ollama_logprobs(choice.get("logprobs"))) is not None:
        obj["logprobs"] = logprobs
    return obj


async def stream(
    shape: Shape, events: AsyncGenerator[dict[str, Any] | None, None]
) -> AsyncGenerator[bytes, None]:
    """NDJSON over ``chunks``: a line per piece of text, the tool calls once they are whole,
    then the final line. Idle pings are dropped (NDJSON has no comments), and an error after
    the start is a last ``{"error": ...}`` line, which Ollama's clients raise."""
    reason, usage = "stop", None
    calls = ToolCallParts()
    async with contextlib.aclosing(events):
        try:
            async for chunk in events:
                if chunk is None:
                    continue
                if not chunk["choices"]:
                    usage = chunk.get("usage")
                    continue
                choice = chunk["choices"][0]
                delta = choice.get("delta") or {}
                text = delta.get("content") if "delta" in choice else choice.get("text")
                calls.add(delta.get("tool_calls") or [])
                logprobs = ollama_logprobs(choice.get("logprobs"))
                if text or logprobs:
                    if shape.timing.first_token is None:
                        shape.timing.first_token = time.monotonic()
                    piece = {**shape.envelope(), **shape.piece(text or ""), "done": False}
                    if logprobs is not None:
                        piece["logprobs"] = logprobs
                    yield line(piece)
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
            if calls:
                yield line({**shape.envelope(), **shape.piece("", calls.whole()), "done": False})
            final = shape.final(reason, usage, shape.timing.streamed_eval_seconds())
            yield line({**shape.envelope(), **shape.piece(""), **final})
        except CorralError as exc:
            yield line({"error": exc.message})


def tool_call(call: dict[str, Any], index: int | None = None) -> dict[str, Any]:
    """OpenAI's tool call (``arguments`` a JSON string) as Ollama's (an object)."""
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw)
    except ValueError:
        raise BadGateway(
            "the model's tool call arguments are not valid JSON", code="invalid_tool_call"
        ) from None
    out: dict[str, Any] = {"name": function.get("name", ""), "arguments": arguments}
    if index is not None:
        out["index"] = index
    result: dict[str, Any] = {"function": out}
    if call.get("id"):
        result["id"] = call["id"]
    return result


class ToolCallParts:
    """Streamed ``delta.tool_calls`` fragments, joined by index into whole calls."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, fragments: list[dict[str, Any]]) -> None:
        for fragment in fragments:
            call = self._calls.setdefault(
                int(fragment.get("index", 0)),
                {"id": None, "function": {"name": "", "arguments": ""}},
            )
            if fragment.get("id"):
                call["id"] = fragment["id"]
            function = fragment.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""

    def __bool__(self) -> bool:
        return bool(self._calls)

    def whole(self) -> list[dict[str, Any]]:
        return [tool_call(self._calls[i], i) for i in sorted(self._calls)]


def ollama_logprobs(logprobs: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """Chat's ``logprobs.content`` or the completions API's parallel lists, as Ollama's list
    of ``{token, logprob, bytes, top_logprobs}``."""
    if not logprobs:
        return None
    if "content" in logprobs:
        return [
            {
                "token": t["token"],
                "logprob": t["logprob"],
                "bytes": t.get("bytes"),
                "top_logprobs": [
                    {"token": a["token"], "logprob": a["logprob"], "bytes": a.get("bytes")}
                    for a in t.get("top_logprobs") or []
                ],
            }
            for t in logprobs["content"] or []
        ]
    tops = logprobs.get("top_logprobs") or []
    return [
        {
            "token": token,
            "logprob": logprob,
            "top_logprobs": [
                {"token": k, "logprob": v}
                for k, v in sorted(
                    (tops[i] if i < len(tops) else {}).items(), key=lambda kv: -kv[1]
                )
            ],
        }
        for i, (token, logprob) in enumerate(
            zip(logprobs.get("tokens") or [], logprobs.get("token_logprobs") or [], strict=False)
        )
    ]
