"""The model manager's actor loop, without processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.supervisor.errors import ModelNotFound
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


def _fake_settings(tmp_path: Path, reply_tokens: int) -> Path:
    config = tmp_path / "corral.toml"
    config.write_text(
        f'[models.m]\nbackend = "fake"\nargs = ["--reply-tokens", "{reply_tokens}"]\n'
    )
    return config


class _Holder:
    interrupted = False

    async def interrupt(self) -> None:
        self.interrupted = True


async def test_a_lease_holds_the_model_and_gives_it_back(tmp_path: Path) -> None:
    settings = load_settings(_fake_settings(tmp_path, 3), data_dir=tmp_path, demo_model=False)
    manager = ModelManager(Catalog(settings), settings)
    actor = asyncio.create_task(manager.run())
    holder = _Holder()
    try:
        async with manager.lease("m", holder=holder) as lease:
            assert lease.model_id == "m"
            assert manager.status("m").state == "loaded"
            assert manager.status("m").in_flight == 1
            assert manager.drain.running == 1
            assert await manager.drain.drain(0) == 1  # shutdown interrupts what still runs
            assert holder.interrupted
        await _until(manager, lambda: manager.status("m").in_flight == 0)
        assert manager.drain.running == 0
    finally:
        await manager.close()
        actor.cancel()


async def test_a_lease_runs_the_preset_the_catalog_has_now(tmp_path: Path) -> None:
    """The manager reads the entry itself: a request resolved before a reload cannot bring
    back the old preset."""
    config = _fake_settings(tmp_path, 3)
    settings = load_settings(config, data_dir=tmp_path, demo_model=False)
    catalog = Catalog(settings)
    manager = ModelManager(catalog, settings)
    actor = asyncio.create_task(manager.run())
    try:
        stale = catalog.resolve("m")  # resolved by a request...
        config.write_text(config.read_text().replace('"3"', '"5"'))  # ...then a reload
        catalog.apply(load_settings(config, data_dir=tmp_path, demo_model=False))
        async with manager.lease(stale.id) as lease:
            assert lease.child.command.argv[-2:] == ["--reply-tokens", "5"]
    finally:
        await manager.close()
        actor.cancel()


async def test_a_lease_of_an_unknown_model_is_refused(tmp_path: Path) -> None:
    settings = load_settings(_fake_settings(tmp_path, 3), data_dir=tmp_path, demo_model=False)
    manager = ModelManager(Catalog(settings), settings)
    actor = asyncio.create_task(manager.run())
    try:
        with pytest.raises(ModelNotFound):
            async with manager.lease("nope"):
                pass
        assert manager.status("nope").state == "unloaded"
    finally:
        await manager.close()
        actor.cancel()


async def _until(manager: ModelManager, predicate: Callable[[], bool]) -> None:
    """Wait for the manager's views to reach ``predicate``, woken by each change."""
    with manager.changes.subscribe() as changes:
        async with asyncio.timeout(10):
            while not predicate():
                await changes.get()
