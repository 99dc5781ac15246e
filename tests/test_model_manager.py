"""The model manager's actor loop, without processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corral.supervisor.models.catalog import Catalog
from corral.supervisor.models.manager import ModelManager
from corral.supervisor.settings import load_settings


async def test_the_actor_stops_when_cancelled_as_a_command_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that lands in the same loop turn as a command must still end the actor.

    With `asyncio.wait_for` around the inbox this hung on Python 3.11: wait_for returned the
    command and dropped the cancel, so shutdown waited forever for the actor to end. It needs a
    timer pending (a loaded model's keep-alive), as wait_for without a timeout just awaits.
    """
    settings = load_settings(None, data_dir=tmp_path, models_dir=tmp_path, demo_model=False)
    manager = ModelManager(Catalog(settings), settings)
    monkeypatch.setattr(manager._scheduler, "next_deadline", lambda: manager.clock() + 300)
    actor = asyncio.create_task(manager.run())
    await asyncio.sleep(0)  # the actor now waits on its inbox
    manager._post(lambda now: [])  # wakes the inbox's getter...
    actor.cancel()  # ...in the same loop turn as the cancel
    done, _ = await asyncio.wait({actor}, timeout=5)
    assert done == {actor}, "the actor did not end after cancel"
    assert actor.cancelled()
