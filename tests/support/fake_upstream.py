"""A small OpenAI-compatible upstream for the remote-model tests: an aiohttp app on loopback
whose answers a test scripts (stream, 5xx or 4xx before the first byte, a stream cut off).

With ``calls`` set, a chat answer streams those ``delta.tool_calls`` fragments instead of its
words and ends with ``finish_reason: "tool_calls"``.

It records every request (path, body, Authorization header), so tests see which replica
served what and with which key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Mode = Literal["ok", "error_500", "error_400", "cut"]
WORDS = ["Hello", " from", " the", " upstream", "."]


@dataclass
class FakeUpstream:
    mode: Mode = "ok"
    words: list[str] = field(default_factory=lambda: list(WORDS))
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    url: str = ""  # the base URL, .../v1, once started
    gate: asyncio.Event | None = None  # when given, streams pause after their first word
    listed: tuple[str, ...] = ("up-model",)  # what /v1/models answers
    probe_status: int = 200  # /v1/models' status, so a test can keep a replica ejected
    drop: int = 0  # generations to drop without an answer, as a server closing a kept-alive one
    calls: list[list[dict[str, Any]]] = field(default_factory=list)  # per chunk: its tool_calls

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._generate)
        app.router.add_post("/v1/completions", self._generate)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    @property
    def generations(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] != "/v1/models"]

    def _record(self, request: web.Request, body: Any) -> None:
        self.requests.append({"path": request.path, "body": body})
        self.auth.append(request.headers.get("Authorization"))

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        if self.mode == "error_500" or self.probe_status != 200:
            status = 500 if self.mode == "error_500" else self.probe_status
            return web.json_response({"error": {"message": "down"}}, status=status)
        data = [{"id": model, "object": "model"} for model in self.listed]
        return web.json_response({"object": "list", "data": data})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record(request, body)
        rows = [
            {"object": "embedding", "index": i, "embedding": [float(i), 0.5, -1.0]}
            for i, _ in enumerate(body["input"])
        ]
        usage = {"prompt_tokens": 3 * len(rows), "total_tokens": 3 * len(rows)}
        return web.json_response({"object": "list", "data": rows, "usage": usage})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._record(request, body)
        if self.drop:
            self.drop -= 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if self.mode == "error_500":
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        if self.mode == "error_400":
            error = {
                "message": "temperature above 1.5 is not allowed here",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "invalid_value",
            }
            return web.json_response({"error": error}, status=400)
        chat = request.path.endswith("/chat/completions")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if chat and self.calls:
            return await self._call(response)
        for i, word in enumerate(self.words):
            choice: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                choice["delta"] = {"content": word}
            else:
                choice["text"] = word
            await response.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
            if self.gate is not None and i == 0:
                await self.gate.wait()
            if self.mode == "cut" and i == 1:
                # The upstream dies mid-stream: the connection closes with the body unfinished.
                assert request.transport is not None
                request.transport.abort()
                return response
        last: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        last["delta" if chat else "text"] = {} if chat else ""
        usage = {"prompt_tokens": 11, "completion_tokens": len(self.words), "total_tokens": 0}
        for chunk in ({"choices": [last]}, {"choices": [], "usage": usage}):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _call(self, response: web.StreamResponse) -> web.StreamResponse:
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}
        ]
        for fragments in self.calls:
            delta = {"tool_calls": fragments}
            chunks.append({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        usage = {"prompt_tokens": 20, "completion_tokens": len(self.calls), "total_tokens": 0}
        chunks.append({"choices": [], "usage": usage})
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response


@asynccontextmanager
async def serving(upstream: FakeUpstream) -> AsyncIterator[FakeUpstream]:
    runner = web.AppRunner(upstream.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    upstream.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield upstream
    finally:
        await runner.cleanup()
