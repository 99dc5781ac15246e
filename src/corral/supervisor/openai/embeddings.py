"""``POST /v1/embeddings`` (OpenAI's shape) and ``POST /v1/rerank`` (Cohere's and Jina's shape,
as llama-server and LocalAI serve it): thin handlers over ``EncodeCall``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from corral.protocol.messages import Rerank
from corral.supervisor.appkeys import MANAGER
from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import read_body
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.encoding import EncodeCall, split_inputs, vector_floats
from corral.supervisor.models.hf_entries import require
from corral.supervisor.openai.routes import resolve_for

MAX_INPUTS = 2048  # OpenAI's own limit per request
MAX_DOCUMENTS = 1024
TokenIds = list[Annotated[int, Field(ge=0)]]


class _Strict(BaseModel):
    # Every field these routes accept changes the answer; any other is a 400 naming it.
    model_config = ConfigDict(extra="forbid")


class EmbeddingRequest(_Strict):
    model: str | None = None
    input: str | list[str] | TokenIds | list[TokenIds]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    keep_alive: float | None = None

    def inputs(self) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
        value = self.input
        if isinstance(value, str):
            return (value,), ()
        if not value:
            raise BadRequest("input must not be empty", param="input")
        if len(value) > MAX_INPUTS:
            raise BadRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
        if all(isinstance(v, str) for v in value):
            return tuple(str(v) for v in value), ()
        if all(isinstance(v, int) for v in value):
            return (), (tuple(int(v) for v in value),)  # type: ignore[arg-type]
        ids = tuple(tuple(v) for v in value if isinstance(v, list))
        if any(not i for i in ids):
            raise BadRequest("a token id list must not be empty", param="input")
        return (), ids


class Document(_Strict):
    text: str


class RerankRequest(_Strict):
    model: str | None = None
    query: str
    documents: list[str | Document] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    keep_alive: float | None = None

    def texts(self) -> tuple[str, ...]:
        return tuple(d if isinstance(d, str) else d.text for d in self.documents)


def _serving(request: web.Request, name: str | None, capability: str) -> ModelEntry:
    entry = resolve_for(request, name)
    require(entry, capability)
    return entry


async def embeddings(request: web.Request) -> web.Response:
    body = await read_body(request, EmbeddingRequest)
    entry = _serving(request, body.model, "embeddings")
    texts, ids = body.inputs()
    batches = split_inputs(texts, ids)
    if body.dimensions is not None:
        batches = [b.model_copy(update={"dimensions": body.dimensions}) for b in batches]
    call = EncodeCall(request.app[MANAGER], entry, body.keep_alive)
    vectors = await call.embed(uuid.uuid4().hex, batches)
    data: list[dict[str, Any]] = [
        {
            "object": "embedding",
            "index": index,
            "embedding": vector if body.encoding_format == "base64" else vector_floats(vector),
        }
        for index, vector in enumerate(vectors)
    ]
    usage = {"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens}
    return web.json_response({"object": "list", "data": data, "model": entry.id, "usage": usage})


async def rerank(request: web.Request) -> web.Response:
    body = await read_body(request, RerankRequest)
    entry = _serving(request, body.model, "rerank")
    documents = body.texts()
    request_id = uuid.uuid4().hex
    call = EncodeCall(request.app[MANAGER], entry, body.keep_alive)
    scores = await call.rerank(Rerank(request_id=request_id, query=body.query, documents=documents))
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    results: list[dict[str, Any]] = []
    for index in order[: body.top_n or len(order)]:
        result: dict[str, Any] = {"index": index, "relevance_score": scores[index]}
        if body.return_documents:
            result["document"] = {"text": documents[index]}
        results.append(result)
    usage = {"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens}
    return web.json_response(
        {"id": request_id, "object": "list", "model": entry.id, "results": results, "usage": usage}
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/rerank", rerank)
