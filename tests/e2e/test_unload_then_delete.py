"""Low: a delete right after an unload waits for the model to stop instead of a 409."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.appkeys import MANAGER
from tests.conftest import have_llama
from tests.support.inproc import eventually, inproc_settings
from tests.support.tiny_gguf import write_tiny_gguf

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
pytestmark = pytest.mark.skipif(not have_llama(), reason="needs llama-cpp-python")


async def test_delete_right_after_unload_waits_for_the_stop(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    settings = inproc_settings(tmp_path, n_ctx=512)
    model = settings.resolved_models_dir / "tiny.gguf"
    write_tiny_gguf(model, seed=1, n_ctx=512)
    client = await aiohttp_client(create_app(settings))
    assert (await client.post("/admin/models/load", json={"model": "tiny"})).status == 202
    manager = client.app[MANAGER]

    def state() -> str | None:
        view = manager.views.get("tiny")  # views is replaced on every change: read it anew
        return view.state if view is not None else None

    await eventually(lambda: state() in ("loaded", "failed"), seconds=60)
    assert state() == "loaded"
    unloaded = await client.post("/admin/models/unload", json={"model": "tiny"})
    assert unloaded.status == 200
    assert (await unloaded.json())["state"] == "unloading"  # the child is still exiting
    deleted = await client.post("/admin/models/delete", json={"model": "tiny"})
    assert deleted.status == 200, await deleted.text()
    assert not model.exists()
