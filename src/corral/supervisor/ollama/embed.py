"""``POST /api/embed`` and the legacy ``POST /api/embeddings``, over Corral's embeddings
(``EncodeCall``, as ``/v1/embeddings``). Corral refuses an input longer than the model
takes instead of cutting it, which is Ollama's ``truncate: false``."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from corral.supervisor.appkeys import MANAGER
from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import read_body
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.encoding import EncodeCall, split_inputs, vector_floats
from corral.supervisor.models.hf_entries import require
from corral.supervisor.ollama.generation import keep_alive_seconds, timing_for
from corral.supervisor.ollama.models import resolve
from corral.supervisor.ollama.options import only_hardware, refuse
from corral.supervisor.ollama.schemas import EmbedBody, EmbeddingsBody
from corral.supervisor.openai.embeddings import MAX_INPUTS


async def _vectors(
    request: web.Request,
    entry: ModelEntry,
    texts: list[str],
    keep_alive: float | None,
    dimensions: int | None = None,
) -> tuple[list[list[float]], int]:
    """The texts' vectors and prompt tokens; no texts only loads the model, as in Ollama."""
    manager = request.app[MANAGER]
    if not texts:
        async with manager.lease(entry.id, keep_alive):
            return [], 0
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
    batches = split_inputs(tuple(texts), ())
    if dimensions is not None:
        batches = [b.model_copy(update={"dimensions": dimensions}) for b in batches]
    call = EncodeCall(manager, entry, keep_alive)
    vectors = await call.embed(uuid.uuid4().hex, batches)
    return [vector_floats(v) for v in vectors], call.prompt_tokens


def _embedder(request: web.Request, name: str | None) -> ModelEntry:
    entry = resolve(request, name)
    require(entry, "embeddings")
    return entry


async def embed(request: web.Request) -> web.Response:
    body = await read_body(request, EmbedBody)
    only_hardware(body.options)
    if body.truncate:
        raise refuse(
            "truncate",
            "Corral refuses an input longer than the model takes rather than cutting it; "
            "send truncate: false or leave it out",
        )
    entry = _embedder(request, body.model)
    timing = timing_for(request, entry)
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    texts = [] if texts == [""] else texts
    vectors, tokens = await _vectors(
        request, entry, texts, keep_alive_seconds(body.keep_alive), body.dimensions
    )
    durations = timing.durations(0.0)
    answer: dict[str, Any] = {
        "model": body.model or entry.id,
        "embeddings": vectors,
        "total_duration": durations["total_duration"],
        "load_duration": durations["load_duration"],
        "prompt_eval_count": tokens,
    }
    return web.json_response(answer)


async def embeddings(request: web.Request) -> web.Response:
    body = await read_body(request, EmbeddingsBody)
    only_hardware(body.options)
    entry = _embedder(request, body.model)
    texts = [body.prompt] if body.prompt else []
    vectors, _ = await _vectors(request, entry, texts, keep_alive_seconds(body.keep_alive))
    return web.json_response({"embedding": vectors[0] if vectors else []})
