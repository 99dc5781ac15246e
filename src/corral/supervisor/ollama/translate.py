"""Ollama's ``/api/chat`` and ``/api/generate`` bodies as Corral's OpenAI request models.

The translation only renames: every value is then checked by the OpenAI models exactly as
on ``/v1``, and an error they raise is renamed back (``max_tokens`` -> ``options.num_predict``)
by ``renamed``. What Ollama can ask and Corral cannot do is refused here, by its Ollama name.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from corral.supervisor.errors import CorralError
from corral.supervisor.http.json_body import parse_body
from corral.supervisor.ollama.options import MAPPED, refuse, sampling_fields
from corral.supervisor.ollama.schemas import ChatBody, GenerateBody, GenerationBody, Message
from corral.supervisor.openai.format import Kind
from corral.supervisor.openai.schemas import ChatCompletionRequest, CompletionRequest

M = TypeVar("M", ChatCompletionRequest, CompletionRequest)
# OpenAI's field -> the Ollama field a client sent, for error messages.
_COMMON: Mapping[str, str] = {
    **{openai: f"options.{ollama}" for ollama, openai in MAPPED.items()},
    "response_format": "format",
}
RENAMES: Mapping[tuple[str, Kind], Mapping[str, str]] = {
    ("chat", "chat"): _COMMON,
    ("generate", "chat"): {**_COMMON, "messages": "prompt"},
    ("generate", "completion"): {**_COMMON, "logprobs": "top_logprobs"},
}


@dataclass(frozen=True)
class Translated:
    kind: Kind
    body: ChatCompletionRequest | CompletionRequest


@contextlib.contextmanager
def renamed(renames: Mapping[str, str]) -> Iterator[None]:
    """Errors raised inside name the Ollama field the client sent, not the OpenAI one."""
    try:
        yield
    except CorralError as exc:
        if exc.param:
            head = exc.param.split(".", 1)[0]
            new = renames.get(exc.param) or renames.get(head)
            if new is not None:
                # The whole path where the message names it ("messages.1.content: ..."),
                # else the field.
                old = exc.param if exc.param in exc.message else head
                exc.message = re.sub(rf"\b{re.escape(old)}\b", new, exc.message)
                exc.param = new
        raise


def generate_kind(body: GenerateBody) -> Kind:
    """A raw prompt, or one with a suffix (fill in the middle), is not templated: the
    completions path. Otherwise the prompt is a user message in the model's chat template."""
    return "completion" if body.raw or body.suffix is not None else "chat"


def chat_request(body: ChatBody, model_id: str, n_ctx: int | None) -> Translated:
    fields = _common(body, model_id, n_ctx)
    fields["messages"] = chat_messages(body.messages or [])
    if body.tools:  # the client sends [] when it has none
        fields["tools"] = body.tools
    if body.logprobs:
        fields["logprobs"] = True
    if body.top_logprobs is not None:
        fields["top_logprobs"] = body.top_logprobs
    return Translated("chat", _parse(ChatCompletionRequest, fields))


def generate_request(body: GenerateBody, model_id: str, n_ctx: int | None) -> Translated:
    if body.template:
        raise refuse(
            "template",
            "Go templates are not supported: Corral formats prompts with the model's own chat "
            "template; send raw: true with a prompt formatted by hand instead",
        )
    if body.context:
        raise refuse(
            "context",
            "Corral neither returns nor takes token contexts; send the conversation to "
            "/api/chat as messages",
        )
    if body.images:
        raise refuse("images", "images are not supported: Corral's models read text")
    for name in ("width", "height", "steps"):
        if getattr(body, name) is not None:
            raise refuse(name, "image generation is not supported")
    fields = _common(body, model_id, n_ctx)
    kind = generate_kind(body)
    if kind == "completion":
        if body.system:
            raise refuse(
                "system",
                "a raw or fill-in-the-middle prompt is not templated, so there is no place "
                "for a system message; put it into the prompt",
            )
        fields["prompt"] = body.prompt or ""
        if body.suffix is not None:
            fields["suffix"] = body.suffix
        if body.top_logprobs is not None and not body.logprobs:
            raise refuse("top_logprobs", "top_logprobs needs logprobs: true")
        if body.logprobs:
            fields["logprobs"] = body.top_logprobs or 0
        return Translated(kind, _parse(CompletionRequest, fields))
    messages: list[dict[str, Any]] = []
    if body.system:
        messages.append({"role": "system", "content": body.system})
    messages.append({"role": "user", "content": body.prompt or ""})
    fields["messages"] = messages
    if body.logprobs:
        fields["logprobs"] = True
    if body.top_logprobs is not None:
        fields["top_logprobs"] = body.top_logprobs
    return Translated(kind, _parse(ChatCompletionRequest, fields))


def _common(body: GenerationBody, model_id: str, n_ctx: int | None) -> dict[str, Any]:
    if body.think:
        raise refuse(
            "think",
            "Corral does not run models in a thinking mode; leave think out or set it false",
        )
    fields: dict[str, Any] = {"model": model_id, "stream": body.stream}
    fields.update(sampling_fields(body.options, n_ctx))
    if body.keep_alive is not None:
        fields["keep_alive"] = body.keep_alive
    if body.format == "json":
        fields["response_format"] = {"type": "json_object"}
    elif isinstance(body.format, dict):
        fields["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "format", "schema": body.format, "strict": True},
        }
    return fields


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI's messages. Ollama's tool calls have no ids: each gets one here, and a ``tool``
    message answers the earliest unanswered call of its ``tool_name`` (or the earliest one)."""
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (call id, function name) not yet answered
    for i, message in enumerate(messages):
        if message.images:
            raise refuse(f"messages.{i}.images", "images are not supported: the models read text")
        if message.thinking:
            raise refuse(
                f"messages.{i}.thinking", "Corral's models do not think; leave thinking out"
            )
        item: dict[str, Any] = {"role": message.role, "content": message.content or ""}
        if message.tool_calls:
            calls = []
            for j, call in enumerate(message.tool_calls):
                call_id = call.id or f"call_{i}_{j}"
                function = call.function
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": function.name,
                            "arguments": json.dumps(function.arguments, ensure_ascii=False),
                        },
                    }
                )
                pending.append((call_id, function.name))
            item["tool_calls"] = calls
            item["content"] = message.content or None
        if message.role == "tool":
            if message.tool_name:
                item["name"] = message.tool_name
            answered = next((p for p in pending if message.tool_name in (None, p[1])), None)
            if answered is not None:
                pending.remove(answered)
                item["tool_call_id"] = answered[0]
        out.append(item)
    return out


def _parse(model: type[M], fields: dict[str, Any]) -> M:
    # Through the same parser as a /v1 body, so every check and error message is the same.
    return parse_body(model, json.dumps(fields, ensure_ascii=False).encode())
