"""In-process supervisors for HTTP behaviour tests: ``create_app`` with fake children.

The app is the real one (every middleware, route and the real model manager); the models are
fake children that speak the real protocol, so tests are fast and need no weights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from corral.supervisor.settings import ModelPreset, Settings

FAKE_MODELS = {
    "fake": ModelPreset(backend="fake"),
    "fake-slow": ModelPreset(
        backend="fake", args=["--tokens-per-second", "40", "--reply-tokens", "100000"]
    ),
    "fake-slow-load": ModelPreset(backend="fake", args=["--load-delay", "3.0"]),
    "fake-bad-load": ModelPreset(backend="fake", args=["--fail-load"]),
    "fake-long": ModelPreset(backend="fake", args=["--reply-tokens", "100000"]),
}
# As the daemon runs it: a client that disconnects cancels its handler.
SERVER = {"handler_cancellation": True}

# What a JSON POST from the openai client (or the web UI) sends.
JSON = {"Content-Type": "application/json"}


def inproc_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "models_dir": tmp_path / "models",
        "demo_model": False,
        "default_model": "fake",
        "models": FAKE_MODELS,
        "shutdown_grace": 5.0,
        **overrides,
    }
    (tmp_path / "models").mkdir(exist_ok=True)
    return Settings(**values)


async def eventually(condition: Callable[[], bool], *, seconds: float = 10.0) -> None:
    """Wait for ``condition`` (polled every 10 ms), failing the test after ``seconds``."""
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {seconds} s")


def is_ollama_route(route: web.AbstractRoute) -> bool:
    return getattr(route.handler, "__module__", "").startswith("corral.supervisor.ollama.")


def state_changing_routes(app: web.Application, *, ollama: bool = False) -> list[tuple[str, str]]:
    """(method, path) of every route that is not GET/HEAD, with placeholders filled in.

    Ollama's routes answer errors in Ollama's shape (``{"error": "message"}``, no code): they
    are listed with ``ollama=True`` only, for the tests in ``tests/supervisor/ollama``."""
    routes = []
    for route in app.router.routes():
        if route.method in ("GET", "HEAD", "OPTIONS", "*") or is_ollama_route(route) != ollama:
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter", "")
        routes.append((route.method, path.replace("{cid}", "c1").replace("{model}", "fake")))
    return sorted(set(routes))
