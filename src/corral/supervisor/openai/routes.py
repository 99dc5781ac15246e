"""OpenAI routes: thin handlers over the catalog, the model manager and ``Generation``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiohttp import web

from corral.supervisor.appkeys import (
    CATALOG,
    CONVERSATIONS,
    DOWNLOADS,
    FACTS,
    MANAGER,
    PRINCIPAL,
    SETTINGS,
    STREAMS,
)
from corral.supervisor.conversations.answers import AnswerRecorder
from corral.supervisor.conversations.store import owner_for
from corral.supervisor.errors import BadRequest, ModelNotFound
from corral.supervisor.http.json_body import read_body
from corral.supervisor.http.request_facts import RequestFacts
from corral.supervisor.http.sse import owner_of, send_sse
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.generation import Generation
from corral.supervisor.models.hf_entries import refuse_unsupported, require
from corral.supervisor.models.shelf import shelf_status
from corral.supervisor.models.speech_models import SPEECH_BACKENDS, model_kind
from corral.supervisor.openai.choices import fingerprint
from corral.supervisor.openai.format import (
    OPENAI,
    Dialect,
    Kind,
    ResponseIds,
    chunks,
    collect_choices,
)
from corral.supervisor.openai.refusals import refuse_for_backend
from corral.supervisor.openai.schemas import ChatCompletionRequest, CompletionRequest
from corral.supervisor.streams.resumable import cache_key, conversation_id, follow

log = logging.getLogger("corral.api")


def model_object(request: web.Request, model_id: str, entry: ModelEntry | None) -> dict[str, Any]:
    """A model as ``/v1/models`` shows it, with Corral's run state beside OpenAI's fields;
    ``entry`` is None for a model whose files a pull is still fetching."""
    app = request.app
    status = shelf_status(app[MANAGER], app[DOWNLOADS], model_id)
    created, served, kind = 0, tuple[str, ...](), "chat"
    if entry is not None:
        path = entry.path
        created = int(path.stat().st_mtime) if path is not None and path.exists() else 0
        served = entry.serves
        kind = model_kind(entry.backend)
        if kind == "chat" and served and "chat" not in served:
            kind = served[0]  # an hf encoder: "embeddings" or "rerank"
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "corral",
        "state": status.state,
        "progress": status.progress,
        "error": status.error,
        "default": model_id == app[CATALOG].default_model,
        # What the model serves: "chat"/"completion", "embeddings" or "rerank".
        "capabilities": list(served),
        "kind": kind,
    }


def _allowed(request: web.Request, model_id: str) -> bool:
    principal = request.get(PRINCIPAL)
    return principal is None or principal.allows_model(model_id)


def resolve_for(request: web.Request, name: str | None) -> ModelEntry:
    """The model a request names, as far as its key may see it (others do not exist)."""
    entry = request.app[CATALOG].resolve(name)
    if not _allowed(request, entry.id):
        raise ModelNotFound(f"the model '{name or entry.id}' does not exist", param="model")
    return entry


async def list_models(request: web.Request) -> web.Response:
    entries = [e for e in request.app[CATALOG].entries().values() if _allowed(request, e.id)]
    data = [model_object(request, e.id, e) for e in entries]
    known = {e.id for e in entries}
    # Models still being pulled: not on disk yet, but announced with their progress.
    for item in request.app[DOWNLOADS].downloading().values():
        if item.model_id not in known and _allowed(request, item.model_id):
            data.append(model_object(request, item.model_id, None))
    return web.json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    try:
        entry = resolve_for(request, name)
    except ModelNotFound:
        # Not on disk yet, but being pulled: the same object the list shows for it.
        item = request.app[DOWNLOADS].downloading().get(name)
        if item is None or not _allowed(request, name):
            raise
        return web.json_response(model_object(request, item.model_id, None))
    return web.json_response(model_object(request, entry.id, entry))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await respond(request, "chat", await read_body(request, ChatCompletionRequest))


async def completions(request: web.Request) -> web.StreamResponse:
    return await respond(request, "completion", await read_body(request, CompletionRequest))


async def respond(
    request: web.Request,
    kind: Kind,
    body: ChatCompletionRequest | CompletionRequest,
    dialect: Dialect = OPENAI,
) -> web.StreamResponse:
    """Run ``body`` on its model and answer in ``dialect`` (OpenAI's own unless a
    translator's): whole, streamed, or as a resumable stream with ``X-Conversation-Id``."""
    settings = request.app[SETTINGS].current
    entry = resolve_for(request, body.model)
    require(entry, kind)  # an embedding model does not chat: a 400 before any load
    refuse_unsupported(entry, body.model_extra)
    refuse_for_backend(entry.backend, body.engine_asks())
    if entry.backend in SPEECH_BACKENDS:
        raise BadRequest(
            f"'{entry.id}' is a {model_kind(entry.backend)} model; it does not generate text",
            param="model",
            code="wrong_model_kind",
        )
    request_id = uuid.uuid4().hex
    cid = request.headers.get("X-Conversation-Id")
    generate = body.to_generate(request_id, entry.preset, settings.max_tokens_limit)
    if body.user:  # OpenAI's end-user id: recorded with the request, for abuse tracing
        log.info("request %s for user %r", request_id, body.user[:128])
    hint = cid if cid is not None else getattr(body, "prompt_cache_key", None)
    generation = Generation(
        request.app[MANAGER],
        entry,
        generate.model_copy(update={"cache_key": cache_key(hint)}),
        body.keep_alive_seconds(),
    )
    if body.stream and cid is not None:
        return await _resumable(request, conversation_id(cid), generation, kind, body, dialect)
    await generation.start()
    ids = new_ids(kind, request_id, entry, body)
    facts = request[FACTS]
    try:
        if not body.stream:
            choices, done = await collect_choices(generation)
            answer = ids.full_choices(choices.answer(ids.plan), done)
            return web.json_response(dialect.full(answer))
        events = chunks(
            generation,
            ids,
            include_usage=body.include_usage or dialect.always_usage,
            ping_interval=settings.sse_ping_interval,
        )
        return await send_sse(request, dialect.stream(events), dict(dialect.headers))
    finally:
        # Also on a client disconnect (a failed write, or the handler's cancellation):
        # the generation stops in the child.
        await generation.close()
        record_facts(facts, generation)


def new_ids(
    kind: Kind, request_id: str, entry: ModelEntry, body: ChatCompletionRequest | CompletionRequest
) -> ResponseIds:
    return ResponseIds.new(
        kind, request_id, entry.id, fingerprint=fingerprint(entry), plan=body.choice_plan()
    )


def record_facts(facts: RequestFacts, generation: Generation) -> None:
    done = generation.done
    log.info(
        "generation %s: %d prompt + %d completion tokens",
        done.finish_reason if done is not None else "aborted",
        generation.prompt_tokens,
        generation.completion_tokens,
        extra={"model": generation.entry.id, "request_id": generation.request_id},
    )
    decode = None
    if generation.first_token_at is not None and generation.finished_at is not None:
        decode = generation.finished_at - generation.first_token_at
    facts.record_generation(
        generation.entry.id,
        generation.prompt_tokens,
        generation.completion_tokens,
        generation.ttft,
        decode,
    )


async def _resumable(
    request: web.Request,
    cid: str,
    generation: Generation,
    kind: Kind,
    body: ChatCompletionRequest | CompletionRequest,
    dialect: Dialect,
) -> web.StreamResponse:
    """A stream that survives its client: a producer task fills the session, we follow it."""
    streams = request.app[STREAMS]
    request[FACTS].conversation_id = cid
    session = await streams.open(cid, owner_of(request), generation.entry.id, dialect.framing)
    ids = new_ids(kind, generation.request_id, generation.entry, body)
    ping = request.app[SETTINGS].current.sse_ping_interval
    # Attached before the producer runs: offset 0 is then always ours to read, however fast
    # the model is (a reader that falls behind later is told so in the stream).
    follower = follow(session, 0)
    answer = answer_recorder(request, cid) if kind == "chat" else None
    started = streams.start(
        session,
        generation,
        dialect.stream(
            chunks(
                generation,
                ids,
                include_usage=body.include_usage or dialect.always_usage,
                ping_interval=ping,
                on_text=answer.add if answer is not None else None,
            )
        ),
        (lambda state: answer.save(generation, state)) if answer is not None else None,
    )
    # The wait for the model (a load, or room) happens in the producer: a client that leaves
    # now cancels only this wait. A failed start, or a stop during it, is this POST's answer.
    await asyncio.shield(started)
    # A disconnect (failed write or handler cancellation) ends only this follower.
    response = await send_sse(request, follower, {**dialect.headers, "X-Conversation-Id": cid})
    if generation.done is not None:
        record_facts(request[FACTS], generation)
    return response


def answer_recorder(request: web.Request, cid: str) -> AnswerRecorder | None:
    """Who saves the answer into the stored conversation ``cid`` when the generation ends."""
    conversations = request.app.get(CONVERSATIONS)
    if conversations is None:
        return None
    return AnswerRecorder(conversations, owner_for(request.get(PRINCIPAL)), cid)


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
