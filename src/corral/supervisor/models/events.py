"""What ``GET /admin/events`` sends: the current state, then every change, as (event, data).

- ``model``: an ``/admin/models`` item, whenever a model's state (or load progress) changes,
  and for the models a download is fetching whenever the download moves;
- ``deleted``: ``{"id"}`` of a model that no longer exists;
- ``download``: a job (``/admin/downloads`` item) on every progress frame and state change;
- ``(None, None)``: nothing happened for ``ping_interval`` seconds (an SSE comment).

Bursts are coalesced: each model and each job goes out once per wake-up, with its latest
state. A client that falls too far behind is cut off and reconnects for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from corral.supervisor.broadcast import Lagged, Subscription
from corral.supervisor.hub.cache import hub_model_id, is_model_file
from corral.supervisor.hub.jobs import Job
from corral.supervisor.models.shelf import ModelAdmin

Event = tuple[str | None, Any]


def _model_events(admin: ModelAdmin, model_ids: list[str]) -> list[Event]:
    found: list[Event] = []
    for model_id in dict.fromkeys(model_ids):
        item = admin.item(model_id)
        found.append(("deleted", {"id": model_id}) if item is None else ("model", item))
    return found


def _job_events(admin: ModelAdmin, jobs: list[Job]) -> list[Event]:
    latest = {job.id: job for job in jobs}
    found: list[Event] = [("download", job.event()) for job in latest.values()]
    models = [
        hub_model_id(job.repo, name)
        for job in latest.values()
        for name in job.files
        if is_model_file(name)
    ]
    return found + _model_events(admin, models)


async def event_stream(
    admin: ModelAdmin, stop: asyncio.Event, *, ping_interval: float
) -> AsyncGenerator[Event, None]:
    with (
        admin.manager.changes.subscribe() as models,
        admin.downloads.events.subscribe() as jobs,
    ):
        for item in admin.items():
            yield "model", item
        for job in admin.downloads.jobs():
            if job.active:
                yield "download", job.event()
        waits: dict[asyncio.Future[Any], Subscription[Any]] = {}
        stopping = asyncio.ensure_future(stop.wait())
        try:
            for source in (models, jobs):
                waits[asyncio.ensure_future(source.get())] = source
            while not stop.is_set():
                done, _ = await asyncio.wait(
                    [*waits, stopping], timeout=ping_interval, return_when="FIRST_COMPLETED"
                )
                if not done:
                    yield None, None
                for future in done:
                    subscription = waits.pop(future, None)
                    if subscription is None:
                        continue  # the stop event
                    try:
                        first = future.result()
                    except Lagged:
                        return
                    batch = [first, *subscription.drain()]
                    waits[asyncio.ensure_future(subscription.get())] = subscription
                    for event in (
                        _model_events(admin, batch)
                        if subscription is models
                        else _job_events(admin, batch)
                    ):
                        yield event
        finally:
            for future in [*waits, stopping]:
                future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*waits, stopping, return_exceptions=True)
