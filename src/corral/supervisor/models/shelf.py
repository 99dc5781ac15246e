"""The admin view of the model shelf: one item per model, and the load/unload/delete commands.

An item joins the catalog entry (size, backend, source), the scheduler's view (state,
requests, keep-alive), the child (pid, memory from psutil) and any download fetching it.
Times are wall-clock unix seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from corral.supervisor.broadcast import Lagged
from corral.supervisor.errors import BadRequest, Conflict, Forbidden, ModelNotFound
from corral.supervisor.hub.downloads import DownloadManager
from corral.supervisor.hub.jobs import Downloading
from corral.supervisor.models.catalog import Catalog, ModelEntry
from corral.supervisor.models.manager import ModelManager

log = logging.getLogger("corral.admin")

_STATE_NAMES = {"stopping": "unloading"}
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


def downloading_object(item: Downloading) -> dict[str, Any]:
    """A model that a download is fetching, as ``/v1/models`` lists it."""
    return {
        "id": item.model_id,
        "object": "model",
        "created": 0,
        "owned_by": "corral",
        "state": "downloading",
        "progress": item.progress,
        "error": None,
        "default": False,
    }


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
        await self.manager.load(entry)
        return self._item(entry)

    async def unload(self, model_id: str) -> dict[str, Any]:
        entry = self.entry(model_id)
        await self.manager.unload(entry.id)
        return self._item(entry)

    async def delete(self, model_id: str, *, force: bool) -> dict[str, Any]:
        """Delete a model's files (never outside the models directory and the hub cache)."""
        entry = self.entry(model_id)
        if entry.source == "demo":
            raise BadRequest(
                "the demo model is bundled; set demo_model = false to hide it",
                param="model",
                code="not_deletable",
            )
        await self._stopped(entry.id)
        if entry.repo is not None and entry.file is not None:
            repo, file = entry.repo, entry.file
            if self.downloads.busy(repo):
                raise Conflict(
                    f"a download of {repo} is running; cancel it first",
                    param="model",
                    code="download_in_progress",
                )
            await self.manager.forget(entry.id, force=force)
            freed = await asyncio.to_thread(self.catalog.hub.delete, repo, file)
        else:
            path = self._deletable_file(entry)
            await self.manager.forget(entry.id, force=force)
            freed = await asyncio.to_thread(_unlink, path)
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
        manager = self.manager
        status = manager.status(entry.id)
        view = status.view if status is not None else None
        downloading = self.downloads.downloading().get(entry.id)
        state = _STATE_NAMES.get(view.state, view.state) if view is not None else "unloaded"
        deadline = None
        if view is not None and view.keep_alive_deadline is not None:
            deadline = time.time() + (view.keep_alive_deadline - manager.clock())
        progress = status.progress if status is not None else None
        if downloading is not None and state == "unloaded":
            state, progress = "downloading", downloading.progress
        pid = status.pid if status is not None else None
        return {
            "id": entry.id,
            "state": state,
            "size_bytes": entry.size_bytes,
            "backend": entry.backend,
            "source": _source(entry, self.catalog.models_dir),
            "repo": entry.repo,
            "file": entry.file,
            "loaded_since": status.wall_loaded_since if status is not None else None,
            "last_used": status.wall_last_used if status is not None else None,
            "pid": pid,
            "memory_bytes": _rss(pid),
            "estimated_bytes": self.catalog.footprint(entry),  # what the memory budget counts
            "in_flight": view.in_flight if view is not None else 0,
            "queued": view.queued if view is not None else 0,
            "keep_alive_deadline": deadline,
            "progress": progress,
            "error": view.failure if view is not None and view.state == "failed" else None,
            "pinned": entry.preset.pinned,
            "restarts": status.restarts if status is not None else 0,
            "job": downloading.job if downloading is not None else None,
        }

    def _downloading(self, item: Downloading) -> dict[str, Any]:
        return {
            "id": item.model_id,
            "state": "downloading",
            "size_bytes": item.size or None,
            "backend": "llama",
            "source": f"hf:{item.repo}/{item.file}",
            "repo": item.repo,
            "file": item.file,
            "loaded_since": None,
            "last_used": None,
            "pid": None,
            "memory_bytes": None,
            "estimated_bytes": None,
            "in_flight": 0,
            "queued": 0,
            "keep_alive_deadline": None,
            "progress": item.progress,
            "error": None,
            "pinned": False,
            "restarts": 0,
            "job": item.job,
        }


def _unlink(path: Path) -> int:
    size = path.stat().st_size if path.is_file() else 0
    path.unlink(missing_ok=True)
    return size
