"""Embed and rerank calls: lease a model, send the request, collect its result frames.

An embed request whose inputs would not fit one protocol frame is split into several child
requests on the same lease, in order; the vectors and token counts add up as one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from corral.protocol import MAX_FRAME_BYTES
from corral.protocol.messages import Done, Embed, Embeddings, Error, Rerank, Scores, Started
from corral.supervisor.child_process import ChildFailed
from corral.supervisor.errors import BadGateway, BadRequest, CorralError
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.held_request import HeldRequest
from corral.supervisor.models.manager import ModelManager

# Request frames stay under half the frame limit: JSON escaping can grow text further.
_FRAME_BUDGET = MAX_FRAME_BYTES // 2
_PARAMS = {
    "context_length_exceeded": "input",
    "invalid_input": "input",
    "invalid_dimensions": "dimensions",
    "unsupported": "model",
    "invalid_request": None,
}


def _error(frame: Error, what: str) -> CorralError:
    if frame.code in _PARAMS:
        param = _PARAMS[frame.code]
        if param == "input" and what == "rerank":
            param = "documents"
        return BadRequest(frame.message, code=frame.code, param=param)
    return BadGateway(frame.message, code=frame.code)


def vector_floats(encoded: str) -> list[float]:
    """A protocol vector (base64 of little-endian float32) as Python floats."""
    values = array("f")
    values.frombytes(base64.b64decode(encoded))
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def split_inputs(texts: tuple[str, ...], ids: tuple[tuple[int, ...], ...]) -> list[Embed]:
    """Embed frames (request ids filled in later) that each fit the protocol's frame limit."""
    items: list[str] | list[tuple[int, ...]] = list(texts) if texts else list(ids)
    batches: list[Embed] = []
    start, size = 0, 0
    for index, item in enumerate(items):
        cost = len(json.dumps(item)) + 2
        if cost > _FRAME_BUDGET:
            raise BadRequest(
                f"input {index} is too large for one request", param="input", code="input_too_large"
            )
        if size + cost > _FRAME_BUDGET:
            batches.append(_embed(texts, ids, start, index))
            start, size = index, 0
        size += cost
    batches.append(_embed(texts, ids, start, len(items)))
    return batches


def _embed(texts: tuple[str, ...], ids: tuple[tuple[int, ...], ...], a: int, b: int) -> Embed:
    return Embed(request_id="pending", texts=texts[a:b], token_ids=ids[a:b])


@dataclass(eq=False)  # tracked by identity for the shutdown drain
class EncodeCall:
    manager: ModelManager
    entry: ModelEntry
    keep_alive: float | None = None
    prompt_tokens: int = 0
    _held: HeldRequest | None = field(default=None, init=False)

    async def embed(self, request_id: str, batches: list[Embed]) -> list[str]:
        """Every vector, base64-encoded, in input order."""
        vectors: list[str] = []
        async with self._holding():
            for n, batch in enumerate(batches):
                message = batch.model_copy(update={"request_id": f"{request_id}-{n}"})
                async for frame in self._frames(message, "embeddings"):
                    if isinstance(frame, Embeddings):
                        vectors.extend(frame.vectors)
        expected = sum(len(b.texts) or len(b.token_ids) for b in batches)
        if len(vectors) != expected:  # interrupted by a shutdown
            raise BadGateway(f"the model embedded {len(vectors)} of {expected} inputs")
        return vectors

    async def rerank(self, request: Rerank) -> list[float]:
        scores: list[float] = []
        async with self._holding():
            async for frame in self._frames(request, "rerank"):
                if isinstance(frame, Scores):
                    scores = list(frame.scores)
        if len(scores) != len(request.documents):
            raise BadGateway(
                f"the model scored {len(scores)} of {len(request.documents)} documents"
            )
        return scores

    @contextlib.asynccontextmanager
    async def _holding(self) -> AsyncIterator[None]:
        """The call's lease, given back (and any open request cancelled) however it ends."""
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held is not None:
                await held.close()

    async def _frames(
        self, message: Embed | Rerank, what: str
    ) -> AsyncIterator[Embeddings | Scores]:
        if self._held is None:
            self._held = await HeldRequest.open(
                self.manager, self.entry.id, message, keep_alive=self.keep_alive, holder=self
            )
            handle = self._held.handle
        else:
            handle = await self._held.reopen(message)
        while True:
            event = await handle.next_event()
            if isinstance(event, Started):
                self.prompt_tokens += event.prompt_tokens
            elif isinstance(event, Done):
                return
            elif isinstance(event, Error):
                raise _error(event, what)
            elif isinstance(event, ChildFailed):
                raise event
            elif isinstance(event, Embeddings | Scores):
                yield event

    async def interrupt(self) -> None:
        """Cancel the open child request, if any (a client gone, or the shutdown drain)."""
        if self._held is not None:
            await self._held.interrupt()
