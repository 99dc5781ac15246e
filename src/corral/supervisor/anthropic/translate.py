"""An Anthropic Messages request as Corral's one internal request: OpenAI's chat body.

Anthropic's blocks map onto OpenAI's messages: ``system`` becomes the first message, an
assistant's ``tool_use`` blocks its ``tool_calls``, a user's ``tool_result`` blocks ``tool``
messages (before the rest of that turn, as they answer the calls just made). The OpenAI request
model then checks what it checks for every dialect: a field it cannot honour is a 400.
"""

from __future__ import annotations

import json
from typing import Any

from corral.supervisor.anthropic.schemas import (
    MessageIn,
    MessagesRequest,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
    block_text,
    refuse_unsupported,
)
from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import parse_body
from corral.supervisor.openai.schemas import ChatCompletionRequest


def chat_body(body: MessagesRequest) -> dict[str, Any]:
    """The OpenAI chat body ``body`` asks for, as a client would send it."""
    refuse_unsupported(body)
    messages: list[dict[str, Any]] = []
    if body.system is not None:
        system = (
            body.system if isinstance(body.system, str) else "".join(b.text for b in body.system)
        )
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(body.messages):
        messages.extend(_openai_messages(message, f"messages.{i}"))
    chat: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "max_tokens": body.max_tokens,
        "stream": body.stream,
    }
    last = messages[-1]
    if last["role"] == "assistant" and not last.get("tool_calls"):
        # Anthropic's prefill: the answer goes on from the final assistant text.
        chat["continue_final_message"] = True
    for name, value in (
        ("temperature", body.temperature),
        ("top_p", body.top_p),
        ("top_k", body.top_k),
        ("stop", body.stop_sequences),
        ("user", body.metadata.user_id if body.metadata is not None else None),
        ("keep_alive", body.keep_alive),
    ):
        if value is not None:
            chat[name] = value
    if body.tools:
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "parameters": tool.input_schema,
                },
            }
            for tool in body.tools
        ]
    if body.tool_choice is not None:
        chat.update(_tool_choice(body.tool_choice))
    if body.output_config is not None and body.output_config.format is not None:
        # Anthropic's structured outputs always hold to the schema: OpenAI's strict mode.
        schema = body.output_config.format.schema_
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }
    return chat


def to_chat_request(body: MessagesRequest) -> ChatCompletionRequest:
    # Through the JSON edge like any body: its errors name the field, as for OpenAI's routes.
    return parse_body(ChatCompletionRequest, json.dumps(chat_body(body)).encode())


def _openai_messages(message: MessageIn, where: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for j, block in enumerate(message.content):
        at = f"{where}.content.{j}"
        if isinstance(block, ToolUseBlock):
            if message.role != "assistant":
                raise _misplaced(at, "tool_use", "assistant")
            calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": json.dumps(block.input)},
                }
            )
        elif isinstance(block, ToolResultBlock):
            if message.role != "user":
                raise _misplaced(at, "tool_result", "user")
            results.append(
                {"role": "tool", "tool_call_id": block.tool_use_id, "content": block.text(at)}
            )
        else:
            texts.append(block_text(block, at))
    out = list(results)
    if calls:
        out.append({"role": "assistant", "content": "".join(texts) or None, "tool_calls": calls})
    elif texts or not results:
        out.append({"role": message.role, "content": "".join(texts)})
    return out


def _misplaced(where: str, kind: str, role: str) -> BadRequest:
    return BadRequest(f"{where}: '{kind}' blocks belong in {role} messages", param=where)


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if choice.type == "tool":
        if not choice.name:
            raise BadRequest("tool_choice.name is required for type 'tool'", param="tool_choice")
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
    if choice.disable_parallel_tool_use:
        out["parallel_tool_calls"] = False
    return out
