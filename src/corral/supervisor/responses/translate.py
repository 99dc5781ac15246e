"""A Responses request as Corral's one internal request: OpenAI's chat body.

``instructions`` becomes the first (system) message, ``input`` items become chat messages:
``function_call`` items the ``tool_calls`` of an assistant message (consecutive calls share
one, as a parallel call does), ``function_call_output`` items ``tool`` messages. The chat
request model then checks what it checks for every dialect: a field it cannot honour is a 400.
"""

from __future__ import annotations

import json
from typing import Any

from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import parse_body
from corral.supervisor.openai.schemas import ChatCompletionRequest
from corral.supervisor.responses.schemas import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionChoice,
    FunctionTool,
    MessageItem,
    ResponsesRequest,
    TextFormat,
)

_STATELESS = "Corral stores no responses; send the whole conversation in 'input'"


def _refuse(name: str, why: str) -> BadRequest:
    return BadRequest(f"'{name}': {why}", param=name, code="unsupported")


def refuse_unsupported(body: ResponsesRequest) -> None:
    asks = {
        "previous_response_id": (body.previous_response_id is not None, _STATELESS),
        "conversation": (body.conversation is not None, _STATELESS),
        "prompt": (body.prompt is not None, "stored prompt templates are not supported"),
        "store": (bool(body.store), "Corral does not store responses; leave it out or false"),
        "background": (bool(body.background), "background responses need storage Corral lacks"),
        "reasoning": (
            any(v is not None for v in (body.reasoning or {}).values()),
            "reasoning is not supported by these models",
        ),
        "include": (bool(body.include), "no extra output data is available to include"),
        "top_logprobs": (bool(body.top_logprobs), "logprobs are not served on this route"),
        "max_tool_calls": (body.max_tool_calls is not None, "a tool call budget is not supported"),
        "truncation": (body.truncation == "auto", "input is never truncated; use 'disabled'"),
        "service_tier": (
            body.service_tier not in (None, "auto", "default"),
            "Corral has one service tier: leave it out, 'auto' or 'default'",
        ),
        "text.verbosity": (
            body.text is not None and body.text.verbosity is not None,
            "verbosity is not supported",
        ),
        "stream_options.include_obfuscation": (
            body.stream_options is not None and bool(body.stream_options.include_obfuscation),
            "stream obfuscation padding is not supported; set it false",
        ),
    }
    for name, (asked, why) in asks.items():
        if asked:
            raise _refuse(name, why)
    for i, tool in enumerate(body.tools or []):
        if not isinstance(tool, FunctionTool):
            raise _refuse(
                f"tools.{i}.type",
                f"built-in tools ('{tool.type[:40]}') are not supported; declare a function tool",
            )


def chat_body(body: ResponsesRequest) -> dict[str, Any]:
    """The OpenAI chat body ``body`` asks for, as a client would send it."""
    refuse_unsupported(body)
    messages: list[dict[str, Any]] = []
    if body.instructions is not None:
        messages.append({"role": "system", "content": body.instructions})
    if isinstance(body.input, str):
        messages.append({"role": "user", "content": body.input})
    else:
        for i, item in enumerate(body.input):
            _add_item(messages, item, f"input.{i}")
    chat: dict[str, Any] = {"model": body.model, "messages": messages, "stream": body.stream}
    for name, value in (
        ("max_tokens", body.max_output_tokens),
        ("temperature", body.temperature),
        ("top_p", body.top_p),
        ("user", body.user),
        ("safety_identifier", body.safety_identifier),
        ("prompt_cache_key", body.prompt_cache_key),
        ("parallel_tool_calls", body.parallel_tool_calls),
        ("keep_alive", body.keep_alive),
    ):
        if value is not None:
            chat[name] = value
    if body.tools:
        chat["tools"] = [_function(tool) for tool in body.tools if isinstance(tool, FunctionTool)]
    if body.tool_choice is not None:
        chat["tool_choice"] = (
            {"type": "function", "function": {"name": body.tool_choice.name}}
            if isinstance(body.tool_choice, FunctionChoice)
            else body.tool_choice
        )
    if body.text is not None and body.text.format is not None:
        response_format = _response_format(body.text.format)
        if response_format is not None:
            chat["response_format"] = response_format
    return chat


def to_chat_request(body: ResponsesRequest) -> ChatCompletionRequest:
    # Through the JSON edge like any body: its errors name the field, as for OpenAI's routes.
    return parse_body(ChatCompletionRequest, json.dumps(chat_body(body)).encode())


def _add_item(messages: list[dict[str, Any]], item: object, where: str) -> None:
    if isinstance(item, MessageItem):
        messages.append({"role": item.role, "content": item.text(where)})
    elif isinstance(item, FunctionCallItem):
        call = {
            "id": item.call_id,
            "type": "function",
            "function": {"name": item.name, "arguments": item.arguments},
        }
        last = messages[-1] if messages else None
        # A call right after the assistant's text (or its other calls) is part of that turn.
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif isinstance(item, FunctionCallOutputItem):
        messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.text(where)})
    else:
        kind = str(getattr(item, "type", "?"))[:40]
        why = (
            _STATELESS
            if kind == "item_reference"
            else "send message, function_call and function_call_output items"
        )
        raise _refuse(f"{where}.type", f"items of type '{kind}' are not supported; {why}")


def _function(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _response_format(fmt: TextFormat) -> dict[str, Any] | None:
    if fmt.type == "text":
        return None  # plain text is what a chat answers anyway
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.name is None or fmt.schema_ is None:
        raise BadRequest(
            "text.format of type json_schema needs a name and a schema", param="text.format"
        )
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
    if fmt.description is not None:
        schema["description"] = fmt.description
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": schema}
