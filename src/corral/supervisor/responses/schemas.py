"""Responses request bodies, strict: a field Corral does not know is a 400 naming it.

Corral keeps no responses, so everything that reads a stored one (``previous_response_id``,
``conversation``, item references, ``background``) is refused, as are built-in tools and
reasoning; ``store`` may be left out or false, and the response says ``"store": false``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from corral.protocol.messages import MaxTokens, Probability, Temperature
from corral.supervisor.errors import BadRequest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Other(BaseModel):
    """An item, part or tool of a kind Corral does not serve: refused by its ``type``."""

    model_config = ConfigDict(extra="allow")
    type: str
    known: ClassVar[frozenset[str]] = frozenset()

    @field_validator("type")
    @classmethod
    def _not_known(cls, value: str) -> str:
        if value in cls.known:
            raise ValueError(f"not a valid '{value}'")  # a known kind's own error wins
        return value


class TextPart(_Strict):
    type: Literal["input_text", "output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class OtherPart(_Other):
    known: ClassVar[frozenset[str]] = frozenset({"input_text", "output_text"})


class MessageItem(_Strict):
    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[TextPart | OtherPart]
    id: str | None = None
    status: str | None = None

    def text(self, where: str) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = []
        for i, part in enumerate(self.content):
            if not isinstance(part, TextPart):
                raise BadRequest(
                    f"{where}.content.{i}: content of type '{part.type[:40]}' is not "
                    "supported; send input_text",
                    param=f"{where}.content.{i}.type",
                    code="unsupported_content",
                )
            parts.append(part.text)
        return "".join(parts)


class FunctionCallItem(_Strict):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(_Strict):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[TextPart | OtherPart]
    id: str | None = None
    status: str | None = None

    def text(self, where: str) -> str:
        if isinstance(self.output, str):
            return self.output
        return MessageItem(role="user", content=self.output).text(
            where.replace("content", "output")
        )


class OtherItem(_Other):
    known: ClassVar[frozenset[str]] = frozenset(
        {"message", "function_call", "function_call_output"}
    )


Item = MessageItem | FunctionCallItem | FunctionCallOutputItem | OtherItem


class FunctionTool(_Strict):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class OtherTool(_Other):
    known: ClassVar[frozenset[str]] = frozenset({"function"})


class FunctionChoice(_Strict):
    type: Literal["function"]
    name: str = Field(min_length=1)


class TextFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Strict):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class StreamOptions(_Strict):
    include_obfuscation: bool | None = None


class ResponsesRequest(_Strict):
    model: str | None = None
    input: str | Annotated[list[Item], Field(min_length=1)]
    instructions: str | None = None
    max_output_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    tools: list[FunctionTool | OtherTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    truncation: Literal["disabled", "auto"] | None = None
    keep_alive: float | str | None = None  # Corral's (Ollama's): how long the model stays loaded
    # Refused unless they ask for nothing (refuse_unsupported).
    previous_response_id: str | None = None
    conversation: Any = None
    prompt: Any = None
    background: bool | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
