"""A chat with tools as its template expects it: ``tools``, calls and results in the history.

Templates that know tools get them as Hugging Face templates take them (``tools`` of
``{"type": "function", "function": ...}``, assistant turns with ``tool_calls`` whose
arguments are objects, ``tool`` turns with ``tool_call_id``). For templates that know none
(the generic family) the tools are described in a system message and the history's calls and
results are written out as text, which any template can render.
"""

from __future__ import annotations

import json
from typing import Any

from corral.child.llama.tool_family import ToolFamily
from corral.protocol.messages import ChatMessage, Generate
from corral.protocol.tools import Tool, ToolCall

GENERIC_INSTRUCTIONS = (
    "You can call these functions:\n{tools}\n\n"
    "To call one, answer with only a JSON object of this form and nothing else:\n"
    '{{"name": "<function name>", "arguments": {{<its arguments>}}}}'
)


def template_tools(request: Generate, family: ToolFamily) -> list[dict[str, Any]] | None:
    """The template's ``tools`` variable: None with ``tool_choice: none`` (the model is then
    not told of tools it may not call) and for templates that know no tools."""
    if not request.tools or request.tool_choice == "none" or not family.template_knows_tools:
        return None
    return [_tool(t) for t in request.tools]


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def template_messages(request: Generate, family: ToolFamily) -> list[dict[str, Any]]:
    messages = request.messages or ()
    if not family.template_knows_tools:
        return _generic(request, messages)
    return [_message(m) for m in messages]


def _arguments(call: ToolCall) -> Any:
    # Templates write arguments with ``| tojson``: an object, or a string that is not JSON.
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments


def _message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": _arguments(c)},
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _generic(request: Generate, messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            called = names.get(m.tool_call_id or "", m.name or "the function")
            out.append({"role": "user", "content": f"Result of {called}:\n{m.content}"})
        elif m.tool_calls:
            calls = [
                json.dumps({"name": c.name, "arguments": _arguments(c)}, ensure_ascii=False)
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": "\n".join([m.content, *calls]).strip()})
        else:
            out.append(_message(m))
    if request.tools and request.tool_choice != "none":
        listed = "\n".join(json.dumps(_tool(t)["function"]) for t in request.tools)
        text = GENERIC_INSTRUCTIONS.format(tools=listed)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{text}"}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out
