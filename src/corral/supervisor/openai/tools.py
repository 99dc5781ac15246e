"""OpenAI's ``tools``, ``tool_choice`` and the tool turns of a chat, checked at the edge.

Each tool's ``parameters`` schema becomes part of the grammar that holds the model's calls,
so it is checked like ``response_format``'s (structured.py) before any model loads.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from corral.protocol.tools import Tool, ToolCall, ToolChoice, ToolName
from corral.supervisor.errors import BadRequest
from corral.supervisor.openai.structured import check_schema

FUNCTION_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_TOOLS = 128


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionSpec(_Strict):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    """Calls always match ``parameters`` here (a grammar holds them), strict or not."""


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class FunctionName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


ToolChoiceIn = Literal["none", "auto", "required"] | NamedToolChoice


class FunctionCallIn(_Strict):
    name: str
    arguments: str


class ToolCallIn(_Strict):
    id: str = Field(min_length=1, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCallIn

    def to_call(self) -> ToolCall:
        return ToolCall(id=self.id, name=self.function.name, arguments=self.function.arguments)


def tool_fields(
    tools: list[ToolSpec] | None, choice: ToolChoiceIn | None, parallel: bool | None
) -> dict[str, Any]:
    """The ``Generate`` fields for a request's tools; tools nobody may call are dropped."""
    if not tools:
        if choice not in (None, "none", "auto"):
            raise BadRequest("tool_choice needs tools to choose from", param="tool_choice")
        return {}
    if len(tools) > MAX_TOOLS:
        raise BadRequest(f"at most {MAX_TOOLS} tools", param="tools")
    names: set[str] = set()
    converted = []
    for i, tool in enumerate(tools):
        function = tool.function
        if function.name in names:
            raise BadRequest(
                f"two tools are named '{function.name}'", param=f"tools.{i}.function.name"
            )
        names.add(function.name)
        parameters = function.parameters or {}
        check_schema(parameters, f"tools.{i}.function.parameters")
        if parameters.get("type", "object") != "object":
            raise BadRequest(
                "a function's parameters are an object schema",
                param=f"tools.{i}.function.parameters.type",
            )
        converted.append(
            Tool(name=function.name, description=function.description, parameters=parameters)
        )
    picked: ToolChoice = "auto"
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise BadRequest(
                f"tool_choice names '{choice.function.name}', which is not in tools",
                param="tool_choice.function.name",
            )
        picked = ToolName(name=choice.function.name)
    elif choice is not None:
        picked = choice
    return {
        "tools": tuple(converted),
        "tool_choice": picked,
        "parallel_tool_calls": parallel is not False,
    }
