"""Tool-call payloads of the protocol: the tools a request offers, the calls a model makes.

``Generate`` carries ``Tool`` definitions and a ``ToolChoice``; chat history carries the
``ToolCall`` of earlier assistant turns; ``Delta`` carries the calls being made now as
``ToolCallDelta`` parts (the child parses them out of the model's text).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolCall(_Message):
    """A function call the assistant made, as a later turn's history holds it."""

    id: str
    name: str
    arguments: str
    """The arguments as JSON text, as the model wrote them."""


class Tool(_Message):
    """A function the model may call; ``parameters`` is a JSON schema of its arguments."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class ToolName(_Message):
    """``tool_choice`` naming the one function the model must call."""

    name: str


ToolChoice = Literal["none", "auto", "required"] | ToolName


class ToolCallDelta(_Message):
    """Part of a call the model is making: the first part of call ``index`` (within its
    choice) carries ``id`` and ``name``; later parts add to its ``arguments`` text."""

    index: int = Field(ge=0)
    id: str | None = None
    name: str | None = None
    arguments: str = ""
