"""OpenAI request bodies, parsed at the edge and turned at once into the protocol's ``Generate``.

The models are lenient where OpenAI clients send extras (unknown fields are logged, not
fatal) and strict where a wrong value would silently change the answer.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Annotated, Literal, TypeVar

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
from corral.supervisor.settings import ModelPreset

log = logging.getLogger("corral.api")

MAX_STOP_SEQUENCES = 16
MAX_KEEP_ALIVE_S = 10 * 365 * 86400.0  # ten years; -1 is forever
_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_TOKEN_ID = re.compile(r"[0-9]{1,10}")
NonEmpty = Annotated[str, Field(min_length=1)]
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class OtherPart(_Lenient):
    type: str


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | OtherPart] | None = None
    name: str | None = None

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


class StreamOptions(_Lenient):
    include_usage: bool = False


class _SamplingFields(_Lenient):
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
    n: int = 1
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    keep_alive: float | str | None = None
    user: str | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported")
        return n

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        return stop

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

    def to_generate(self, request_id: str, preset: ModelPreset, limit: int) -> Generate:
        messages = [
            ChatMessage(
                role="system" if m.role == "developer" else m.role,
                content=m.text(i),
                name=m.name,
            )
            for i, m in enumerate(self.messages)
        ]
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
            ),
            "messages",
        )


class CompletionRequest(_SamplingFields):
    prompt: NonEmpty | list[NonEmpty]
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None

    def to_generate(self, request_id: str, preset: ModelPreset, limit: int) -> Generate:
        prompt = self.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise BadRequest("send exactly one prompt per request", param="prompt")
            prompt = prompt[0]
        for name, unsupported in (
            ("echo", self.echo),
            ("suffix", self.suffix is not None),
            ("logprobs", self.logprobs is not None),
            ("best_of", self.best_of not in (None, 1)),
        ):
            if unsupported:
                raise BadRequest(f"'{name}' is not supported", param=name, code="unsupported")
        generate = Generate(
            request_id=request_id, prompt=prompt, params=self.sampling(preset, limit)
        )
        return fits_in_a_frame(generate, "prompt")
