"""The admin view of the model shelf: one item per model, and the load/unload/delete commands.

An item joins the catalog entry (size, backend, source), the scheduler's view (state,
requests, keep-alive), the child (pid, memory from psutil) and any download fetching it.
Times are wall-clock unix seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from corral.supervisor.broadcast import Lagged
from corral.supervisor.errors import BadRequest, Forbidden, ModelNotFound
from corral.supervisor.hub.downloads import DownloadManager
from corral.supervisor.hub.jobs import Downloading
from corral.supervisor.models.catalog import Catalog, ModelEntry
from corral.supervisor.models.checkpoint import remove_tree
from corral.supervisor.models.hub_speech import delete_hub_speech
from corral.supervisor.models.manager import ModelManager
from corral.supervisor.models.speech_models import SPEECH_BACKENDS
from corral.supervisor.models.status import ModelStatus
from corral.supervisor.remote.health import remote_state

log = logging.getLogger("corral.admin")

STOP_WAIT_S = 30.0  # how long a delete waits for a model that is stopping


def _rss(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def _source(entry: ModelEntry, models_dir: Path) -> str:
    if entry.repo is not None and entry.file is not None:
        hub = f"hf:{entry.repo}/{entry.file}"
        return hub if entry.source == "hub" else f"preset:{hub}"
    if entry.source == "file" and entry.path is not None:
        return f"file:{entry.path.relative_to(models_dir).as_posix()}"
    return entry.source


def shelf_status(manager: ModelManager, downloads: DownloadManager, model_id: str) -> ModelStatus:
    """The manager's status of a model, and "downloading" while a pull fetches one not running;
    a running remote model is reachable, degraded or unreachable."""
    status = manager.status(model_id)
    if status.state == "loaded" and status.upstreams:
        state, error = remote_state(status.upstreams)
        return replace(status, state=state, error=error)
    fetching = downloads.downloading().get(model_id)
    if fetching is not None and status.state == "unloaded":
        return replace(status, state="downloading", progress=fetching.progress)
    return status


@dataclass
class ModelAdmin:
    catalog: Catalog
    manager: ModelManager
    downloads: DownloadManager

    def items(self) -> list[dict[str, Any]]:
        entries = self.catalog.entries()
        items = [self._item(entry) for entry in entries.values()]
        for item in self.downloads.downloading().values():
            if item.model_id not in entries:
                items.append(self._downloading(item))
        return sorted(items, key=lambda item: str(item["id"]))

    def item(self, model_id: str) -> dict[str, Any] | None:
        """The model's item, or None when it no longer exists."""
        entry = self.catalog.entries().get(model_id)
        if entry is not None:
            return self._item(entry)
        downloading = self.downloads.downloading().get(model_id)
        return self._downloading(downloading) if downloading is not None else None

    def entry(self, model_id: str) -> ModelEntry:
        entry = self.catalog.entries().get(model_id)
        if entry is None:
            raise ModelNotFound(f"the model '{model_id}' does not exist", param="model")
        return entry

    async def load(self, model_id: str) -> dict[str, Any]:
        entry = self.entry(model_id)
        if entry.preset.backend != "fake" and entry.source != "demo":
            await self.catalog.command(entry)  # a missing file is a 404 now, not a failed load
        await self.manager.load(entry.id)
        return self._item(entry)

    async def unload(self, model_id: str) -> dict[str, Any]:
        entry = self.entry(model_id)
        await self.manager.unload(entry.id)
        return self._item(entry)

    async def delete(self, model_id: str, *, force: bool) -> dict[str, Any]:
        """Delete a model's files (never outside the models directory and the hub cache)."""
        entry = self.entry(model_id)
        if entry.source in ("demo", "bundled"):
            setting = "demo_model" if entry.source == "demo" else "speech_models"
            raise BadRequest(
                f"'{entry.id}' is bundled; set {setting} = false to hide it",
                param="model",
                code="not_deletable",
            )
        await self._stopped(entry.id)
        if entry.repo is not None and entry.file is not None:
            repo, file = entry.repo, entry.file
            with self.downloads.deleting(repo):
                await self.manager.forget(entry.id, force=force)
                freed = await asyncio.to_thread(self.catalog.hub.delete, repo, file)
        elif entry.source == "hub" and entry.backend in SPEECH_BACKENDS and entry.repo:
            # A speech model pulled from a hub: a Whisper or Coqui snapshot, or a Piper voice.
            with self.downloads.deleting(entry.repo):
                await self.manager.forget(entry.id, force=force)
                tree, path = self.catalog.hub.repo_dir(entry.repo), self._deletable_hub(entry)
                freed = await asyncio.to_thread(delete_hub_speech, tree, path)
        elif entry.backend == "hf" and entry.path is not None and entry.path.is_dir():
            # A checkpoint is a directory: the whole repo folder for a pulled one.
            if entry.source == "hub" and entry.repo is not None:
                with self.downloads.deleting(entry.repo):
                    await self.manager.forget(entry.id, force=force)
                    tree = self.catalog.hub.repo_dir(entry.repo)
                    freed = await asyncio.to_thread(remove_tree, tree)
            else:
                tree = self._deletable_file(entry)
                await self.manager.forget(entry.id, force=force)
                freed = await asyncio.to_thread(remove_tree, tree)
        else:
            path = self._deletable_file(entry)
            await self.manager.forget(entry.id, force=force)
            freed = await asyncio.to_thread(_unlink, path)
        self.catalog.refresh()
        log.info("deleted %s (%d bytes freed)", entry.id, freed)
        self.manager.changes.publish(entry.id)  # a model that never ran has no view to change
        remaining = entry.source == "preset"
        return {"deleted": entry.id, "freed_bytes": freed, "preset_remains": remaining}

    async def _stopped(self, model_id: str) -> None:
        """Wait (a while) for a model that is stopping: an unload returns at once, so a delete
        right after it found the child still exiting and answered 409 "is stopping"."""

        def stopping() -> bool:
            view = self.manager.views.get(model_id)
            return view is not None and view.state == "stopping"

        with self.manager.changes.subscribe() as changes, contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT_S):
                while stopping():
                    with contextlib.suppress(Lagged):
                        await changes.get()
        # Still stopping (its requests have not ended): forget() says so, with a 409.

    def _deletable_hub(self, entry: ModelEntry) -> Path:
        path = entry.path
        if path is None or not path.exists():
            raise BadRequest(
                f"the model '{entry.id}' has no file to delete", param="model", code="no_file"
            )
        return path

    def _deletable_file(self, entry: ModelEntry) -> Path:
        path = entry.path
        if path is None:
            raise BadRequest(
                f"the model '{entry.id}' has no file to delete", param="model", code="no_file"
            )
        models_dir = self.catalog.models_dir.resolve()
        try:
            path.resolve().relative_to(models_dir)
        except ValueError:
            raise Forbidden(
                f"the file of '{entry.id}' is outside the models directory; delete it by hand",
                param="model",
                code="outside_models_dir",
            ) from None
        return path

    def _item(self, entry: ModelEntry) -> dict[str, Any]:
        return self._row(entry.id, entry, self.downloads.downloading().get(entry.id))

    def _downloading(self, item: Downloading) -> dict[str, Any]:
        return self._row(item.model_id, None, item)

    def _row(
        self, model_id: str, entry: ModelEntry | None, fetching: Downloading | None
    ) -> dict[str, Any]:
        """One admin row: the catalog entry (None while its file is still being pulled), the
        status everyone renders, and the download fetching it."""
        status = shelf_status(self.manager, self.downloads, model_id)
        size: int | None
        if entry is not None:
            size, backend, repo, file = entry.size_bytes, entry.backend, entry.repo, entry.file
            source = _source(entry, self.catalog.models_dir)
        else:
            assert fetching is not None
            size, repo, file = fetching.size or None, fetching.repo, fetching.file
            backend = "llama" if file else "hf"  # no file: a whole checkpoint
            source = f"hf:{repo}/{file}" if file else f"hf:{repo}"
        return {
            "id": model_id,
            "state": status.state,
            "size_bytes": size,
            "backend": backend,
            "source": source,
            "repo": repo,
            "file": file,
            "loaded_since": status.loaded_since,
            "last_used": status.last_used,
            "pid": status.pid,
            "memory_bytes": _rss(status.pid),
            # what the memory budget counts
            "estimated_bytes": self.catalog.footprint(entry) if entry is not None else None,
            "in_flight": status.in_flight,
            "queued": status.queued,
            "keep_alive_deadline": status.keep_alive_deadline,
            "progress": status.progress,
            "error": status.error,
            "pinned": entry.preset.pinned if entry is not None else False,
            "restarts": status.restarts,
            "job": fetching.job if fetching is not None else None,
            "slots_busy": status.slots_busy,
            "slots_total": status.slots_total,
            "cached_tokens": status.cached_tokens,
            "kv_parked_bytes": status.kv_parked_bytes,
            "upstreams": [u.model_dump() for u in status.upstreams],
        }


def _unlink(path: Path) -> int:
    if path.is_dir():  # a Whisper model directory
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path)
        return size
    size = path.stat().st_size if path.is_file() else 0
    path.unlink(missing_ok=True)
    if path.suffix == ".onnx":  # a Piper voice is the model and its config beside it
        config = path.with_name(path.name + ".json")
        size += config.stat().st_size if config.is_file() else 0
        config.unlink(missing_ok=True)
    return size
