"""OpenAI request bodies, parsed at the edge and turned at once into the protocol's ``Generate``.

The models are strict: every field Corral accepts is honoured, and a field it does not know
is a 400 naming it (``extra="forbid"``), never silently ignored. OpenAI's fields that Corral
knows but cannot honour are declared and refused in ``refusals.py``.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from corral.protocol.framing import MAX_FRAME_BYTES, ProtocolError, encode
from corral.protocol.messages import (
    ChatMessage,
    Generate,
    MaxTokens,
    Penalty,
    Probability,
    RepeatPenalty,
    SamplingParams,
    Temperature,
    TopK,
)
from corral.supervisor.errors import BadRequest
from corral.supervisor.openai.choices import ChoicePlan
from corral.supervisor.openai.prompts import BATCH, TokenIds, prompt_items
from corral.supervisor.openai.refusals import (
    REFUSED_CHAT_FIELDS,
    check_chat_fields,
    refuse,
)
from corral.supervisor.openai.structured import ResponseFormat, TextFormat, output_grammar
from corral.supervisor.openai.tools import ToolCallIn, ToolChoiceIn, ToolSpec, tool_fields
from corral.supervisor.settings import ModelPreset

log = logging.getLogger("corral.api")

MAX_STOP_SEQUENCES = 16
MAX_CHOICES = 8  # n and best_of: each choice is a sequence in one of the model's slots
MAX_KEEP_ALIVE_S = 10 * 365 * 86400.0  # ten years; -1 is forever
_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_TOKEN_ID = re.compile(r"[0-9]{1,10}")
NonEmpty = Annotated[str, Field(min_length=1)]
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class OtherPart(BaseModel):
    """A content part of another type (image, audio, file): refused by type, whatever it holds."""

    model_config = ConfigDict(extra="allow")
    type: str

    @field_validator("type")
    @classmethod
    def _not_text(cls, value: str) -> str:
        if value == "text":
            raise ValueError("a text part holds only type and text")
        return value


class ChatMessageIn(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | OtherPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(default=None, max_length=128)

    def to_message(self, index: int) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise BadRequest("only assistant turns make tool calls", param=f"messages.{index}")
        if self.role == "tool" and self.tool_call_id is None:
            raise BadRequest(
                "a tool turn says which call it answers",
                param=f"messages.{index}.tool_call_id",
            )
        return ChatMessage(
            role="system" if self.role == "developer" else self.role,
            content=self.text(index),
            name=self.name,
            tool_calls=tuple(c.to_call() for c in self.tool_calls or ()),
            tool_call_id=self.tool_call_id if self.role == "tool" else None,
        )

    def text(self, index: int) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if not isinstance(part, TextPart):
                raise BadRequest(
                    f"content parts of type '{part.type}' are not supported; send text",
                    param=f"messages.{index}.content",
                    code="unsupported_content",
                )
            parts.append(part.text)
        return "".join(parts)


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class _SamplingFields(_Strict):
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    repeat_penalty: RepeatPenalty | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    keep_alive: float | str | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        return stop

    def _check_stream_options(self) -> None:
        if self.stream_options is not None and self.stream_options.include_obfuscation:
            refuse(
                "stream_options.include_obfuscation",
                "stream obfuscation padding is not supported; set it false",
            )

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def keep_alive_seconds(self) -> float | None:
        """Ollama-style ``keep_alive``: seconds, or a duration such as "5m"; -1 is forever."""
        value = self.keep_alive
        if value is None:
            return None
        if isinstance(value, float | int):
            seconds = float(value)
        else:
            match = _DURATION.match(value.strip())
            if match is None:
                raise BadRequest(
                    "keep_alive is a number of seconds or a duration like '90s', '5m', '1h'",
                    param="keep_alive",
                )
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
        # A deadline of "9" * 400 seconds is infinity, and infinity minus now is NaN: the
        # scheduler's idle timer must only ever see a real number (negative means never).
        if not math.isfinite(seconds) or seconds > MAX_KEEP_ALIVE_S:
            raise BadRequest(
                f"keep_alive may be at most {MAX_KEEP_ALIVE_S:.0f} seconds; -1 keeps it loaded",
                param="keep_alive",
            )
        return seconds

    def sampling(self, preset: ModelPreset, max_tokens_limit: int) -> SamplingParams:
        defaults = preset.sampling
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None and max_tokens > max_tokens_limit:
            raise BadRequest(f"max_tokens may be at most {max_tokens_limit}", param="max_tokens")
        bias: dict[int, float] = {}
        for key, value in (self.logit_bias or {}).items():
            # ASCII digits only ("²".isdigit() is true), and within llama.cpp's int32 token ids.
            if _TOKEN_ID.fullmatch(key) is None or int(key) >= 2**31:
                raise BadRequest(
                    f"logit_bias keys are token ids (0 to 2^31-1), not {key[:40]!r}",
                    param="logit_bias",
                )
            bias[int(key)] = value
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            max_tokens=max_tokens or defaults.max_tokens,
            temperature=_pick(self.temperature, defaults.temperature),
            top_p=_pick(self.top_p, defaults.top_p),
            top_k=_pick(self.top_k, defaults.top_k),
            min_p=_pick(self.min_p, defaults.min_p),
            repeat_penalty=_pick(self.repeat_penalty, defaults.repeat_penalty),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            stop=tuple(stops),
            logit_bias=bias,
        )


def fits_in_a_frame(generate: Generate, param: str) -> Generate:
    """Refuse at the edge what the child protocol could not carry (a 400, not a 502 later)."""
    try:
        encode(generate)
    except ProtocolError:
        raise BadRequest(
            f"the {param} is too large: a request to a model may take at most "
            f"{MAX_FRAME_BYTES >> 20} MiB encoded",
            param=param,
            code="prompt_too_large",
        ) from None
    return generate


def _pick(value: T | None, default: T | None) -> T | None:
    return value if value is not None else default


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessageIn] = Field(min_length=1)
    # vLLM's name: go on with the final assistant message instead of starting a new one.
    continue_final_message: bool = False
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # The same KV slot hint as X-Conversation-Id, without making the stream resumable.
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # OpenAI's fields that are refused unless they ask for nothing (refusals.py).
    store: bool | None = None
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    reasoning_effort: Any = None
    verbosity: Any = None
    web_search_options: Any = None
    functions: Any = None
    function_call: Any = None
    # Tools and structured output (tools.py, structured.py); grammar and json_schema are
    # llama-server's fields.
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    grammar: str | None = None
    json_schema: dict[str, Any] | None = None

    def choice_plan(self) -> ChoicePlan:
        return ChoicePlan(n=self.n, logprobs=self.logprobs)

    def engine_asks(self) -> dict[str, object]:
        """What only the llama engine serves, as asked (refused for other backends)."""
        asks: dict[str, object] = {"n": self.n} if self.n > 1 else {}
        if self.logprobs:
            asks["logprobs"] = True
        structured = not isinstance(self.response_format, TextFormat | None)
        for name, value in (
            ("tools", self.tools or None),
            # Without tools these ask for nothing (a required choice is a 400 of its own).
            ("tool_choice", self.tool_choice if self.tools else None),
            ("parallel_tool_calls", self.parallel_tool_calls if self.tools else None),
            ("response_format", self.response_format if structured else None),
            ("grammar", self.grammar),
            ("json_schema", self.json_schema),
        ):
            if value is not None:
                asks[name] = value
        for i, m in enumerate(self.messages):
            if m.tool_calls or m.role == "tool":
                asks[f"messages.{i}"] = "a tool call or result"
        return asks

    def to_generate(self, request_id: str, preset: ModelPreset, limit: int) -> Generate:
        check_chat_fields(self.model_dump(include=_REFUSABLE, exclude_none=True))
        self._check_stream_options()
        if self.top_logprobs is not None and not self.logprobs:
            raise BadRequest("top_logprobs needs logprobs: true", param="top_logprobs")
        messages = [m.to_message(i) for i, m in enumerate(self.messages)]
        if preset.system_prompt and not any(m.role == "system" for m in messages):
            messages.insert(0, ChatMessage(role="system", content=preset.system_prompt))
        if self.continue_final_message and messages[-1].role != "assistant":
            raise BadRequest(
                "continue_final_message needs an assistant message last: the answer to go on with",
                param="continue_final_message",
            )
        return fits_in_a_frame(
            Generate(
                request_id=request_id,
                messages=tuple(messages),
                params=self.sampling(preset, limit),
                continue_final=self.continue_final_message,
                n=self.n,
                logprobs=(self.top_logprobs or 0) if self.logprobs else None,
                **self._constraints(),
            ),
            "messages",
        )

    def _constraints(self) -> dict[str, Any]:
        """Tools and the output's grammar, as ``Generate`` fields."""
        tools = tool_fields(self.tools, self.tool_choice, self.parallel_tool_calls)
        output = output_grammar(self.response_format, self.grammar, self.json_schema)
        if "grammar" in output and tools and tools["tool_choice"] != "none":
            raise BadRequest(
                "a grammar cannot be combined with tools the model may call (a response_format "
                "can); set tool_choice 'none' or leave the grammar out",
                param="grammar",
            )
        return {**tools, **output}


_REFUSABLE = {"store", "metadata", "service_tier", "modalities", *REFUSED_CHAT_FIELDS}


class CompletionRequest(_SamplingFields):
    prompt: (
        NonEmpty | TokenIds | Annotated[list[NonEmpty], BATCH] | Annotated[list[TokenIds], BATCH]
    )
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    best_of: int | None = Field(default=None, ge=1, le=MAX_CHOICES)

    def choice_plan(self) -> ChoicePlan:
        return ChoicePlan(
            n=self.n,
            prompts=len(prompt_items(self.prompt)),
            best_of=self.best_of,
            logprobs=self.logprobs is not None,
        )

    def engine_asks(self) -> dict[str, object]:
        asks: dict[str, object] = {"n": self.n} if self.n > 1 else {}
        items = prompt_items(self.prompt)
        if len(items) > 1 or not isinstance(items[0], str):
            asks["prompt"] = "token ids or a batch"
        for name, value in (
            ("logprobs", self.logprobs),
            ("echo", self.echo or None),
            ("suffix", self.suffix),
            ("best_of", self.best_of if self.best_of not in (None, 1) else None),
        ):
            if value is not None:
                asks[name] = value
        return asks

    def to_generate(self, request_id: str, preset: ModelPreset, limit: int) -> Generate:
        self._check_stream_options()
        plan = self.choice_plan()
        if self.best_of is not None and self.best_of < self.n:
            raise BadRequest("best_of must be at least n", param="best_of")
        if self.stream and plan.generated > self.n:
            raise BadRequest("best_of cannot be streamed, as in OpenAI's API", param="best_of")
        if self.echo and self.logprobs is not None:
            raise BadRequest(
                "echo with logprobs (the prompt's own logprobs) is not supported", param="echo"
            )
        items = prompt_items(self.prompt)
        single = len(items) == 1 and isinstance(items[0], str) and self.suffix is None
        # best_of ranks its choices by their logprobs, asked for or not.
        logprobs = self.logprobs
        if logprobs is None and plan.generated > self.n:
            logprobs = 0
        generate = Generate(
            request_id=request_id,
            prompt=items[0] if single and isinstance(items[0], str) else None,
            prompts=() if single else tuple(items),
            params=self.sampling(preset, limit),
            n=plan.generated,
            logprobs=logprobs,
            echo=self.echo,
            suffix=self.suffix,
        )
        return fits_in_a_frame(generate, "prompt")
