"""Ollama's routes, registered once, with Ollama's error shape on every one of them."""

from __future__ import annotations

from aiohttp import web

from corral.supervisor.ollama import embed, errors, generation, shelf


def setup(app: web.Application) -> None:
    routes = [
        web.get("/api/version", shelf.version),
        web.get("/api/tags", shelf.tags),
        web.get("/api/ps", shelf.ps),
        web.post("/api/show", shelf.show),
        web.post("/api/chat", generation.chat),
        web.post("/api/generate", generation.generate),
        web.post("/api/embed", embed.embed),
        web.post("/api/embeddings", embed.embeddings),
        web.post("/api/pull", shelf.pull),
        web.delete("/api/delete", shelf.delete),
        web.post("/api/create", shelf.refused(shelf.CREATE)),
        web.post("/api/copy", shelf.refused(shelf.COPY)),
        web.post("/api/push", shelf.refused(shelf.PUSH)),
    ]
    app.router.add_routes(routes)
    errors.install(app, frozenset(route.path for route in routes))
