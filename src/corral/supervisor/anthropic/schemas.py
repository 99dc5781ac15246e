"""Anthropic Messages request bodies, strict: a field Corral does not know is a 400 naming it.

Fields Anthropic has but Corral cannot honour (extended thinking, server tools, MCP, code
containers) are declared so that the refusal says why, and refused in ``refuse_unsupported``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from corral.protocol.messages import MaxTokens, Probability, TopK
from corral.supervisor.errors import BadRequest

MAX_STOP_SEQUENCES = 16  # as Corral's OpenAI routes: each is checked against every new piece
_KNOWN_BLOCKS = frozenset({"text", "tool_use", "tool_result"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheControl(_Strict):
    """A prompt-caching breakpoint. Corral reuses a prompt's cached prefix by itself (the KV
    in the model's slot), so a breakpoint asks for what always happens; the tokens read from
    the cache are reported as ``usage.cache_read_input_tokens``."""

    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class OtherBlock(BaseModel):
    """A content block of a kind Corral does not read (image, document, thinking, ...):
    refused by its type, whatever it holds."""

    model_config = ConfigDict(extra="allow")
    type: str

    @field_validator("type")
    @classmethod
    def _not_known(cls, value: str) -> str:
        if value in _KNOWN_BLOCKS:  # a known block with a wrong field: its own error wins
            raise ValueError(f"not a valid '{value}' block")
        return value


class TextBlock(_Strict):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None
    citations: list[Any] | None = None


class ToolUseBlock(_Strict):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]
    cache_control: CacheControl | None = None
    # The SDK sends a tool_use block back as it received it, with these unset (null): the
    # programmatic-calling and MCP-toolset features they belong to are not served, so only
    # null is accepted.
    caller: None = None
    toolset_name: None = None


class ToolResultBlock(_Strict):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[TextBlock | OtherBlock] | None = None
    is_error: bool = False
    cache_control: CacheControl | None = None

    def text(self, where: str) -> str:
        if self.content is None:
            body = ""
        elif isinstance(self.content, str):
            body = self.content
        else:
            body = "".join(
                block_text(block, f"{where}.content.{i}") for i, block in enumerate(self.content)
            )
        # OpenAI's tool message has no error flag: the model reads that the call failed.
        return f"Error: {body}" if self.is_error else body


Block = TextBlock | ToolUseBlock | ToolResultBlock | OtherBlock


def block_text(block: TextBlock | OtherBlock, where: str) -> str:
    if isinstance(block, TextBlock):
        return block.text
    raise BadRequest(
        f"{where}: content blocks of type '{block.type[:40]}' are not supported; send text",
        param=f"{where}.type",
        code="unsupported_content",
    )


class MessageIn(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Tool(_Strict):
    """A client tool. Anthropic's server tools (web search, bash, computer use, ...) carry a
    ``type`` such as ``web_search_20250305``; they run on Anthropic's side and are refused."""

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None
    cache_control: CacheControl | None = None


class ToolChoice(_Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(_Strict):
    user_id: str | None = Field(default=None, max_length=256)


class Thinking(BaseModel):
    """Extended thinking's settings (enabled, adaptive, ...): only ``disabled`` is served."""

    model_config = ConfigDict(extra="allow")
    type: str


class JsonFormat(_Strict):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Strict):
    """Structured output: the answer is JSON that ``format.schema`` constrains (a grammar)."""

    format: JsonFormat | None = None
    effort: str | None = None


class Prompt(_Strict):
    """What a prompt is made of: what ``count_tokens`` reads, and a message request too."""

    model: str
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    output_config: OutputConfig | None = None
    cache_control: CacheControl | None = None
    speed: Literal["standard", "fast"] | None = None
    keep_alive: float | str | None = None  # Corral's (Ollama's): how long the model stays loaded
    # Anthropic's own, refused unless they ask for nothing (refuse_unsupported).
    thinking: Thinking | None = None
    container: Any = None
    mcp_servers: list[Any] | None = None
    context_management: Any = None


class MessagesRequest(Prompt):
    max_tokens: MaxTokens
    stop_sequences: Annotated[list[str], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    metadata: Metadata | None = None
    stream: bool = False
    service_tier: Literal["auto", "standard_only"] | None = None


class CountTokensRequest(Prompt):
    def as_message(self) -> MessagesRequest:
        """The request whose prompt this is, answered with one token: the model reads the
        prompt (its chat template and tools included) and says how many tokens it was."""
        return MessagesRequest.model_validate(
            {**self.model_dump(by_alias=True, exclude_unset=True), "max_tokens": 1}
        )


_REFUSED = {
    "container": "code execution containers are not supported",
    "mcp_servers": "MCP servers are not supported; pass their tools as client tools",
    "context_management": "context management is not supported",
}


def refuse_unsupported(body: Prompt) -> None:
    for name, why in _REFUSED.items():
        if getattr(body, name) not in (None, []):
            raise BadRequest(f"'{name}': {why}", param=name, code="unsupported")
    if body.thinking is not None and body.thinking.type != "disabled":
        raise BadRequest(
            "'thinking': extended thinking is not supported by these models; leave it out",
            param="thinking",
            code="unsupported",
        )
    if body.output_config is not None and body.output_config.effort is not None:
        raise BadRequest(
            "'output_config.effort': effort levels are not supported by these models",
            param="output_config.effort",
            code="unsupported",
        )
    if body.speed == "fast":
        raise BadRequest("'speed': one speed is served; 'standard'", param="speed")
    for i, tool in enumerate(body.tools or []):
        if tool.type not in (None, "custom"):
            raise BadRequest(
                f"tools.{i}: Anthropic's server tools ('{tool.type[:40]}') are not supported; "
                "declare a client tool with an input_schema",
                param=f"tools.{i}.type",
                code="unsupported",
            )
        if tool.input_schema is None:
            raise BadRequest(f"tools.{i}.input_schema is required", param=f"tools.{i}.input_schema")
