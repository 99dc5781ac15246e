"""The OpenAI wire format both ways: a generate frame as the upstream's request body, and the
upstream's stream chunks as the pieces of delta frames.

The body is built from the typed frame, not from the client's raw JSON: the supervisor has
already validated every field, applied the preset's defaults and limits, and translated the
other dialects (Ollama, Anthropic), so an upstream sees exactly what a local engine would.
Fields beyond OpenAI's (top_k, min_p, repeat_penalty) are sent only when set: vLLM and
llama-server take them, a strict upstream refuses them by name, and that refusal reaches the
client as the upstream's 400.

Tools go as OpenAI's ``{"type": "function", "function": ...}`` with ``tool_choice`` and
``parallel_tool_calls``; earlier calls and their results go in the history as OpenAI has
them. The upstream's call fragments (or a whole ``message.tool_calls``) come back as the
protocol's ``ToolCallDelta`` parts.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from corral.protocol.messages import (
    ChatMessage,
    FinishReason,
    Generate,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from corral.protocol.tools import Tool, ToolCallDelta, ToolChoice

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}
# Engines' names for the sampling fields that OpenAI's API lacks.
_EXTRA_SAMPLING = {"top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repeat_penalty"}


def _sampling(params: SamplingParams) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("max_tokens", "temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if (value := getattr(params, name)) is not None:
            body[name] = value
    for name, wire in _EXTRA_SAMPLING.items():
        if (value := getattr(params, name)) is not None:
            body[wire] = value
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if params.logit_bias:
        body["logit_bias"] = {str(token): bias for token, bias in params.logit_bias.items()}
    return body


def request_body(generate: Generate, model: str) -> tuple[str, dict[str, Any]]:
    """The upstream path (relative to its base URL) and JSON body for ``generate``."""
    body: dict[str, Any] = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        **_sampling(generate.params),
    }
    if generate.n > 1:
        body["n"] = generate.n
    if generate.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": generate.json_schema, "strict": True},
        }
    if generate.grammar is not None:
        body["grammar"] = generate.grammar  # llama-server's field
    if generate.messages is not None:
        body["messages"] = [_message(m) for m in generate.messages]
        if generate.tools:
            body["tools"] = [_tool(t) for t in generate.tools]
            body["tool_choice"] = _tool_choice(generate.tool_choice)
            body["parallel_tool_calls"] = generate.parallel_tool_calls
        if generate.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = generate.logprobs
        if generate.continue_final:  # vLLM's and llama-server's names
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return "/chat/completions", body
    prompts = [list(p) if isinstance(p, tuple) else p for p in generate.prompts]
    body["prompt"] = prompts if prompts else generate.prompt or ""
    if generate.logprobs is not None:
        body["logprobs"] = generate.logprobs
    if generate.echo:
        body["echo"] = True
    if generate.suffix is not None:
        body["suffix"] = generate.suffix
    return "/completions", body


def _message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        # OpenAI's assistant turn that only calls has null content; some engines refuse "".
        out["content"] = message.content or None
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    return {"type": "function", "function": {"name": choice.name}}


@dataclass(frozen=True)
class Piece:
    """One choice's part of an upstream chunk."""

    index: int
    text: str
    tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: FinishReason | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    stop_sequence: str | None = None


@dataclass
class ChunkReader:
    """Reads one upstream stream's chunks, keeping what the end of the stream needs."""

    usage: Usage | None = None
    finish: dict[int, FinishReason] = field(default_factory=dict)
    opened: set[tuple[int, int]] = field(default_factory=set)
    """(choice, call) pairs whose first part has gone out: only that part has id and name."""

    def read(self, chunk: dict[str, Any]) -> list[Piece]:
        if isinstance(usage := chunk.get("usage"), dict):
            details = usage.get("prompt_tokens_details") or {}
            self.usage = Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                cached_tokens=int(details.get("cached_tokens") or 0),
            )
        pieces = []
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            # A streamed chunk has a delta; an upstream that answers whole, a message.
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice.get("message")
            if isinstance(delta, dict):
                text = delta.get("content") or ""
                calls = self._calls(index, delta.get("tool_calls"))
            else:
                text, calls = choice.get("text") or "", ()
            logprobs = _logprobs(choice.get("logprobs"))
            raw_finish = choice.get("finish_reason")
            # An engine's other reasons (content_filter, function_call) end it as a stop.
            finish = _FINISH.get(raw_finish, "stop") if raw_finish else None
            if finish is not None:
                self.finish[index] = finish
            # vLLM's and Corral's stop_reason: the stop string that ended the choice (vLLM
            # puts a stop token's id there too, which names no string).
            matched = choice.get("stop_reason")
            stop = matched if finish is not None and isinstance(matched, str) else None
            tokens = len(logprobs) if logprobs else (1 if text or calls else 0)
            if text or logprobs or calls or finish is not None:
                pieces.append(Piece(index, text, tokens, logprobs, finish, calls, stop))
        return pieces

    def _calls(self, choice: int, raw: Any) -> tuple[ToolCallDelta, ...]:
        if not isinstance(raw, list):
            return ()
        calls = []
        for position, part in enumerate(raw):
            if not isinstance(part, dict):
                continue
            function = part.get("function") or {}
            index = part.get("index")
            index = int(index) if isinstance(index, int) and index >= 0 else position
            arguments = function.get("arguments")
            if not isinstance(arguments, str):  # an engine that sends the object itself
                arguments = "" if arguments is None else json.dumps(arguments)
            if (choice, index) in self.opened:
                calls.append(ToolCallDelta(index=index, arguments=arguments))
                continue
            self.opened.add((choice, index))
            # The first part opens the call with its id and name; an engine that sends no
            # id gets one, since a client answers the call by it.
            call_id = part.get("id") or f"call_{uuid.uuid4().hex[:24]}"
            name = str(function.get("name") or "")
            calls.append(ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments))
        return tuple(calls)

    def finish_reason(self) -> FinishReason:
        reasons = self.finish.values()
        if "tool_calls" in reasons:  # as the llama engine: any choice's calls end the request
            return "tool_calls"
        return "length" if "length" in reasons else "stop"


def _logprobs(raw: Any) -> tuple[TokenLogprob, ...]:
    if not isinstance(raw, dict):
        return ()
    if isinstance(content := raw.get("content"), list):  # chat
        return tuple(
            TokenLogprob(
                token=item["token"],
                logprob=float(item["logprob"]),
                bytes=tuple(item.get("bytes") or ()),
                top=tuple(
                    TopLogprob(
                        token=top["token"],
                        logprob=float(top["logprob"]),
                        bytes=tuple(top.get("bytes") or ()),
                    )
                    for top in item.get("top_logprobs") or ()
                ),
            )
            for item in content
        )
    tokens = raw.get("tokens") or []  # completions
    values = raw.get("token_logprobs") or []
    tops = raw.get("top_logprobs") or [None] * len(tokens)
    return tuple(
        TokenLogprob(
            token=token,
            logprob=float(value if value is not None else 0.0),
            top=tuple(TopLogprob(token=t, logprob=float(lp)) for t, lp in (top or {}).items()),
        )
        for token, value, top in zip(tokens, values, tops, strict=False)
    )
