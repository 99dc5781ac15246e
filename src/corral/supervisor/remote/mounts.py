"""Whole upstreams mounted under a prefix: every model a `mount = true` preset's upstream lists
in its `/models` appears on the shelf as `<preset>/<upstream id>`, a remote model of its own.

One task lists each mounted upstream now and then and hands the ids to the catalog; a listing
that fails keeps the ids it had, so a blip upstream does not empty the shelf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import httpx

from corral.supervisor.models.catalog import MODEL_ID_PATTERN, Catalog
from corral.supervisor.settings import ModelPreset, Settings

log = logging.getLogger("corral.remote")

LIST_INTERVAL_S = 30.0


def read_api_key(preset: ModelPreset) -> str | None:
    """The key a preset names (its environment variable or file), for the listing call; the
    remote child reads its own."""
    if preset.api_key_env:
        return os.environ.get(preset.api_key_env) or None
    if preset.api_key_file is not None:
        with contextlib.suppress(OSError):
            return preset.api_key_file.expanduser().read_text().strip() or None
    return None


class RemoteMounts:
    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.settings = settings
        self._wake = asyncio.Event()

    def apply(self, settings: Settings) -> None:
        self.settings = settings
        self._wake.set()

    def _mounts(self) -> dict[str, ModelPreset]:
        models = self.settings.models
        return {name: p for name, p in models.items() if p.backend == "remote" and p.mount}

    async def list_once(self, client: httpx.AsyncClient) -> None:
        mounts = self._mounts()
        for name, preset in mounts.items():
            ids = await self._list(client, name, preset)
            if ids is not None and ids != self.catalog.mounted.get(name):
                log.info("mounted %s: %d models", name, len(ids))
                self.catalog.mounted[name] = ids
                self.catalog.refresh()
        for gone in set(self.catalog.mounted) - set(mounts):
            del self.catalog.mounted[gone]
            self.catalog.refresh()

    async def _list(
        self, client: httpx.AsyncClient, name: str, preset: ModelPreset
    ) -> tuple[str, ...] | None:
        key = read_api_key(preset)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        for url in preset.upstream_urls:  # the first replica that answers
            try:
                response = await client.get(url + "/models", headers=headers)
                response.raise_for_status()
                ids = sorted(str(item["id"]) for item in response.json()["data"])
                # Ids Corral cannot name (too long, odd characters) are left out.
                return tuple(i for i in ids if MODEL_ID_PATTERN.match(f"{name}/{i}"))
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("cannot list the models of %s at %s: %s", name, url, exc)
        return None

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                await self.list_once(client)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LIST_INTERVAL_S):
                        await self._wake.wait()
