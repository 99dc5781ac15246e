"""The OpenAI wire format both ways: a generate frame as the upstream's request body, and the
upstream's stream chunks as the pieces of delta frames.

The body is built from the typed frame, not from the client's raw JSON: the supervisor has
already validated every field, applied the preset's defaults and limits, and translated the
other dialects (Ollama, Anthropic), so an upstream sees exactly what a local engine would.
Fields beyond OpenAI's (top_k, min_p, repeat_penalty) are sent only when set: vLLM and
llama-server take them, a strict upstream refuses them by name, and that refusal reaches the
client as the upstream's 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.protocol.messages import (
    FinishReason,
    Generate,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
    Usage,
)

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
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
        body["messages"] = [
            {"role": m.role, "content": m.content, **({"name": m.name} if m.name else {})}
            for m in generate.messages
        ]
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


@dataclass(frozen=True)
class Piece:
    """One choice's part of an upstream chunk."""

    index: int
    text: str
    tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: FinishReason | None = None


@dataclass
class ChunkReader:
    """Reads one upstream stream's chunks, keeping what the end of the stream needs."""

    usage: Usage | None = None
    finish: dict[int, FinishReason] = field(default_factory=dict)

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
            delta = choice.get("delta")
            text = (delta.get("content") if isinstance(delta, dict) else choice.get("text")) or ""
            logprobs = _logprobs(choice.get("logprobs"))
            raw_finish = choice.get("finish_reason")
            # An engine's other reasons (tool_calls, content_filter) end the choice as a stop.
            finish = _FINISH.get(raw_finish, "stop") if raw_finish else None
            if finish is not None:
                self.finish[index] = finish
            tokens = len(logprobs) if logprobs else (1 if text else 0)
            if text or logprobs or finish is not None:
                pieces.append(Piece(index, text, tokens, logprobs, finish))
        return pieces

    def finish_reason(self) -> FinishReason:
        return "length" if "length" in self.finish.values() else "stop"


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
