"""``POST /api/chat`` and ``POST /api/generate``: translate, run through the OpenAI path's
``respond`` (auth, model permissions, analytics, metrics, keep-alive and the KV cache hint
apply alike) and render Ollama's shape. A request with no messages (or no prompt) only loads
or unloads its model, as in Ollama. A streamed one with ``X-Conversation-Id`` is a resumable
stream like ``/v1``'s, stored and replayed as NDJSON."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from corral.supervisor.appkeys import FACTS, MANAGER
from corral.supervisor.http.json_body import read_body
from corral.supervisor.http.request_facts import RequestFacts
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.hf_entries import require
from corral.supervisor.ollama.models import context_size, resolve
from corral.supervisor.ollama.options import refuse
from corral.supervisor.ollama.render import Api, Shape, Timing, ollama_dialect, timestamp
from corral.supervisor.ollama.schemas import ChatBody, GenerateBody, GenerationBody
from corral.supervisor.ollama.translate import (
    RENAMES,
    Translated,
    chat_request,
    generate_kind,
    generate_request,
    renamed,
)
from corral.supervisor.openai.routes import respond
from corral.supervisor.openai.schemas import CompletionRequest


def keep_alive_seconds(value: float | str | None) -> float | None:
    """Ollama's ``keep_alive``, read as ``/v1`` reads it (the same field, the same rules)."""
    return CompletionRequest.model_construct(prompt="", keep_alive=value).keep_alive_seconds()


def timing_for(request: web.Request, entry: ModelEntry) -> Timing:
    manager = request.app[MANAGER]
    return Timing(
        loaded_before=manager.status(entry.id).state == "loaded",
        loaded_since=lambda: manager.status(entry.id).loaded_since,
    )


async def chat(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, ChatBody)
    entry = resolve(request, body.model)
    if not body.messages:
        return await load_only(request, "chat", body, entry)
    with renamed(RENAMES["chat", "chat"]):
        translated = chat_request(body, entry.id, context_size(request, entry))
        return await _run(
            request, Shape("chat", body.model or entry.id, timing_for(request, entry)), translated
        )


async def generate(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, GenerateBody)
    entry = resolve(request, body.model)
    if not body.prompt and body.suffix is None and not body.system:
        return await load_only(request, "generate", body, entry)
    with renamed(RENAMES["generate", generate_kind(body)]):
        translated = generate_request(body, entry.id, context_size(request, entry))
        shape = Shape("generate", body.model or entry.id, timing_for(request, entry))
        return await _run(request, shape, translated)


async def _run(request: web.Request, shape: Shape, translated: Translated) -> web.StreamResponse:
    response = await respond(request, translated.kind, translated.body, ollama_dialect(shape))
    if translated.body.stream or not isinstance(response, web.Response):
        return response
    assert isinstance(response.body, bytes)
    # The generation's timings are the request's facts once respond() has returned.
    answer: dict[str, Any] = json.loads(response.body)
    answer.update(shape.timing.durations(eval_seconds(request[FACTS])))
    return web.json_response(answer)


def eval_seconds(facts: RequestFacts) -> float:
    """First token to last, from the facts ``respond`` recorded (tokens after the first over
    their rate)."""
    tokens, rate = facts.completion_tokens, facts.tokens_per_second
    return (tokens - 1) / rate if tokens and rate else 0.0


async def load_only(
    request: web.Request, api: Api, body: GenerationBody, entry: ModelEntry
) -> web.Response:
    """Load the model and hold it for ``keep_alive`` (or unload it with ``keep_alive: 0``)."""
    for name in ("options", "format", "think", "logprobs", "top_logprobs"):
        if getattr(body, name):
            raise refuse(
                name, "a request without messages or prompt only loads or unloads the model"
            )
    if isinstance(body, ChatBody) and body.tools:
        raise refuse("tools", "a request without messages only loads or unloads the model")
    require(entry, "chat")
    keep_alive = keep_alive_seconds(body.keep_alive)
    manager = request.app[MANAGER]
    if keep_alive == 0:
        await manager.unload(entry.id)
        reason = "unload"
    else:
        async with manager.lease(entry.id, keep_alive):
            pass  # loaded, and the keep-alive timer starts from now
        reason = "load"
    shape = Shape(api, body.model or entry.id, timing_for(request, entry))
    return web.json_response(
        {
            "model": shape.model,
            "created_at": timestamp(),
            **shape.piece(""),
            "done": True,
            "done_reason": reason,
        }
    )
