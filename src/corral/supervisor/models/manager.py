"""The actor that owns every model child: it feeds the pure scheduler and carries out its effects.

All scheduler calls happen inside one task, the actor loop; callers post commands to its inbox
and await futures. What other code may read is ``views``: an immutable snapshot republished
after every step, never used to gate a mutation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from corral.supervisor.broadcast import Broadcast
from corral.supervisor.child_process import ChildExit, ChildFailed, ChildProcess
from corral.supervisor.errors import (
    Conflict,
    CorralError,
    ModelNotFound,
    ServiceUnavailable,
)
from corral.supervisor.models.catalog import Catalog, ModelEntry
from corral.supervisor.models.drain import Drain, Interruptible
from corral.supervisor.models.lease import ChildRecord, Lease
from corral.supervisor.models.limits import (
    default_memory_budget,
    rejection_error,
    scheduler_limits,
)
from corral.supervisor.models.status import ModelStatus
from corral.supervisor.scheduling.scheduler import Scheduler
from corral.supervisor.scheduling.types import (
    Admit,
    Effect,
    ModelSpec,
    ModelView,
    Refused,
    Reject,
    StartLoad,
    StopModel,
)
from corral.supervisor.settings import Settings

log = logging.getLogger("corral.scheduler")

Command = Callable[[float], list[Effect]]
_RUNNING = frozenset({"loading", "loaded", "stopping"})


@dataclass
class ModelManager:
    catalog: Catalog
    settings: Settings
    clock: Callable[[], float] = time.monotonic
    views: dict[str, ModelView] = field(default_factory=dict)
    _scheduler: Scheduler = field(init=False)
    _default_budget: int = field(default=0, init=False)
    _inbox: asyncio.Queue[Command] = field(default_factory=asyncio.Queue, init=False)
    _waiters: dict[str, asyncio.Future[Lease]] = field(default_factory=dict, init=False)
    _entries: dict[str, ModelEntry] = field(default_factory=dict, init=False)
    _runtime: dict[str, ChildRecord] = field(default_factory=dict, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _stopping: set[ChildProcess] = field(default_factory=set, init=False)
    _tickets: itertools.count[int] = field(default_factory=itertools.count, init=False)
    drain: Drain = field(default_factory=Drain, init=False)
    """The generations running over HTTP, for the shutdown drain."""
    changes: Broadcast[str] = field(default_factory=Broadcast, init=False)
    """Ids of models whose view or load progress changed (or that were forgotten)."""

    def __post_init__(self) -> None:
        self._default_budget = default_memory_budget(self.settings)
        self._scheduler = Scheduler(scheduler_limits(self.settings, self._default_budget))

    def apply(self, settings: Settings) -> None:
        """Apply reloaded settings: new limits, and unload models whose settings changed.

        Models whose settings did not change keep running, and so do their requests.
        """
        self.settings = settings
        entries = self.catalog.entries()

        def command(now: float) -> list[Effect]:
            self._scheduler.limits = scheduler_limits(settings, self._default_budget)
            effects: list[Effect] = []
            for model_id, old in list(self._entries.items()):
                new = entries.get(model_id)
                if new is None:
                    effects += self._scheduler.unregister(model_id, now)
                    del self._entries[model_id]
                elif new != old:
                    self._register(new)
                    effects += self._scheduler.unload(model_id, now)
            return effects

        self._post(command)

    # --- public API (any task) ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(
        self,
        model_id: str,
        keep_alive: float | None = None,
        *,
        holder: Interruptible | None = None,
    ) -> AsyncIterator[Lease]:
        """Hold ``model_id`` loaded for one request: wait until it is loaded and admits the
        request (loading it on demand), and give it back when the block ends. ``holder`` is
        the generation the shutdown drain may interrupt meanwhile.

        The model's current catalog entry is read inside the actor, so a request resolved just
        before a reload runs with the new preset, never re-registering the old one.
        """
        lease = await self._acquire(model_id, keep_alive)
        if holder is not None:
            self.drain.track(holder)
        try:
            yield lease
        finally:
            # No await here: a cancelled request still gives its model back.
            if holder is not None:
                self.drain.untrack(holder)
            self._runtime.setdefault(model_id, ChildRecord()).wall_last_used = time.time()
            self._post(lambda now: self._scheduler.finish(lease.ticket, now))

    async def _acquire(self, model_id: str, keep_alive: float | None) -> Lease:
        ticket = f"t{next(self._tickets)}"
        future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = future
        self._post(lambda now: self._submit(model_id, ticket, now, keep_alive))
        try:
            return await future
        except asyncio.CancelledError:
            # The client went away while queued (or just after admission): give it back.
            self._post(lambda now: self._scheduler.abandon(ticket, now))
            raise
        finally:
            self._waiters.pop(ticket, None)

    async def load(self, model_id: str) -> None:
        """Start loading ``model_id`` (without waiting for it); refusals are raised."""

        def command(now: float) -> list[Effect]:
            entry = self.catalog.get(model_id)
            if entry is None:
                raise ModelNotFound(f"the model '{model_id}' does not exist", param="model")
            self._register(entry)
            return self._scheduler.load(model_id, now)

        await self._ask(command)

    async def unload(self, model_id: str) -> None:
        """Stop a model once its requests end; a model that never ran is already unloaded."""

        def command(now: float) -> list[Effect]:
            if model_id not in self._entries:
                return []
            return self._scheduler.unload(model_id, now)

        await self._ask(command)

    async def forget(self, model_id: str, *, force: bool = False) -> None:
        """Drop a model (its files are going away): refuse while it runs unless ``force``, which
        stops its child and fails its requests."""

        def command(now: float) -> list[Effect]:
            view = self.views.get(model_id)  # current: we are inside the actor
            if view is not None and view.state in _RUNNING and not force:
                raise Conflict(
                    f"the model '{model_id}' is {view.state}; unload it first or use force",
                    param="model",
                    code="model_in_use",
                )
            self._entries.pop(model_id, None)
            return self._scheduler.unregister(model_id, now)

        await self._ask(command)

    def status(self, model_id: str) -> ModelStatus:
        view = self.views.get(model_id)
        if view is None:
            return ModelStatus.never_ran(model_id)
        rt = self._runtime.get(model_id, ChildRecord())
        child = rt.child
        return ModelStatus.of(
            view,
            monotonic_now=self.clock(),
            progress=rt.progress,
            pid=child.pid if child is not None and child.alive else None,
            loaded_since=rt.wall_loaded_since,
            last_used=rt.wall_last_used,
            restarts=rt.restarts,
            stats=child.stats if child is not None and child.alive else None,
        )

    def kill_stuck(self, model_id: str, child: ChildProcess, reason: str) -> None:
        """Kill a child that stopped answering (SIGKILL also ends a SIGSTOPped one). Its model
        shows failed with ``reason``, its other requests fail, and the next request restarts it."""
        rt = self._runtime.get(model_id)
        if rt is None or rt.child is not child or rt.kill_reason is not None:
            return
        rt.kill_reason = reason
        log.error("%s: %s; killing its process (pid %s)", model_id, reason, child.pid)
        self._spawn(child.kill())

    def restart_counts(self) -> dict[str, int]:
        return {m: rt.restarts for m, rt in self._runtime.items() if rt.restarts}

    def children(self) -> dict[str, ChildProcess]:
        return {m: rt.child for m, rt in self._runtime.items() if rt.child is not None}

    # --- the actor ------------------------------------------------------------------------

    def _post(self, command: Command) -> None:
        self._inbox.put_nowait(command)

    async def _ask(self, command: Command) -> None:
        """Run ``command`` in the actor and hand its failure (a refusal, say) to the caller."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wrapped(now: float) -> list[Effect]:
            try:
                effects = command(now)
            except Refused as exc:
                done.set_exception(rejection_error(Reject("", "", exc.code, exc.message)))
                return []
            except CorralError as exc:
                done.set_exception(exc)
                return []
            done.set_result(None)
            return effects

        self._post(wrapped)
        await done

    async def run(self) -> None:
        while True:
            deadline = self._scheduler.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
                # lands as get() completes, and the cancelled actor then waited forever (a hang
                # at shutdown, about one run in six of the SIGHUP test).
                async with asyncio.timeout(timeout):
                    command = await self._inbox.get()
            except TimeoutError:
                effects = self._scheduler.tick(self.clock())
            else:
                try:
                    effects = command(self.clock())
                except Exception:  # a bug must not kill the actor and strand every request
                    log.exception("scheduler command failed")
                    effects = []
            self._apply(effects)
            before, self.views = self.views, self._scheduler.snapshot()
            for model_id in before.keys() | self.views.keys():
                if before.get(model_id) != self.views.get(model_id):
                    self.changes.publish(model_id)

    async def close(self) -> None:
        """Stop every child (in parallel) and fail whoever still waits."""
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(ServiceUnavailable("the server is shutting down"))
        # Children being stopped count too: cancelling their stop task below would otherwise
        # leave the process running.
        children = {rt.child for rt in self._runtime.values() if rt.child} | self._stopping
        stops = [child.stop(self.settings.child_stop_timeout) for child in children]
        await asyncio.gather(*stops, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _register(self, entry: ModelEntry) -> None:
        self._entries[entry.id] = entry
        remote = entry.backend == "remote"
        keep_alive = entry.preset.keep_alive
        self._scheduler.register(
            ModelSpec(
                model_id=entry.id,
                footprint=self.catalog.footprint(entry),
                # A remote child stays up (it health-checks the upstream) unless a preset says.
                keep_alive=-1.0 if remote and keep_alive is None else keep_alive,
                pinned=entry.preset.pinned,
                takes_slot=not remote,
            )
        )

    def _submit(
        self, model_id: str, ticket: str, now: float, keep_alive: float | None
    ) -> list[Effect]:
        if ticket not in self._waiters:  # cancelled before the actor saw it
            return []
        entry = self.catalog.get(model_id)
        if entry is not None:
            self._register(entry)
        # An id the catalog no longer knows is refused by the scheduler as unknown_model.
        return self._scheduler.submit(ticket, model_id, now, keep_alive)

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Admit):
                self._admit(effect)
            elif isinstance(effect, Reject):
                future = self._waiters.get(effect.ticket)
                if future is not None and not future.done():
                    future.set_exception(rejection_error(effect))
            elif isinstance(effect, StartLoad):
                self._spawn(self._load(effect.model_id))
            elif isinstance(effect, StopModel):
                log.info("stopping %s (%s)", effect.model_id, effect.reason)
                self._spawn(self._stop(effect.model_id))

    def _admit(self, effect: Admit) -> None:
        future = self._waiters.get(effect.ticket)
        child = self._runtime.get(effect.model_id, ChildRecord()).child
        if future is None or future.done() or child is None:
            # Nobody is waiting any more (or the child vanished): hand the slot straight back.
            self._post(lambda now: self._scheduler.finish(effect.ticket, now))
            return
        future.set_result(Lease(effect.model_id, effect.ticket, child))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self, model_id: str) -> None:
        entry = self._entries[model_id]
        rt = self._runtime.setdefault(model_id, ChildRecord())
        rt.progress = 0.0

        def progress(fraction: float, _: str) -> None:
            rt.progress = fraction
            self.changes.publish(model_id)

        try:
            command = await self.catalog.command(entry)
            child = ChildProcess(
                command,
                on_exit=lambda exit_: self._child_exited(model_id, child, exit_),
                on_progress=progress,
            )
            rt.child = child
            log.info("loading %s", model_id)
            await child.start(self.settings.child_hello_timeout, self.settings.child_load_timeout)
        except (ChildFailed, CorralError, OSError) as exc:
            rt.child = None
            reason = exc.message if isinstance(exc, CorralError) else str(exc)
            log.error("loading %s failed: %s", model_id, reason)
            self._post(lambda now: self._scheduler.load_failed(model_id, reason, now))
            return
        rt.wall_loaded_since = time.time()
        log.info("loaded %s (pid %s)", model_id, child.pid)
        self._post(lambda now: self._scheduler.loaded(model_id, now))

    def _child_exited(self, model_id: str, child: ChildProcess, exit_: ChildExit) -> None:
        def command(now: float) -> list[Effect]:
            rt = self._runtime.get(model_id)
            if rt is None or rt.child is not child or self.views.get(model_id) is None:
                return []
            if self.views[model_id].state != "loaded":
                return []  # a failed start or a requested stop reports through its own path
            rt.child = None
            rt.restarts += 1
            reason, rt.kill_reason = rt.kill_reason or exit_.describe(), None
            return self._scheduler.exited(model_id, reason, now)

        self._post(command)

    async def _stop(self, model_id: str) -> None:
        rt = self._runtime.get(model_id)
        child = rt.child if rt is not None else None
        if rt is not None:
            rt.child = None
        if child is not None:
            self._stopping.add(child)
            try:
                with contextlib.suppress(Exception):
                    await child.stop(self.settings.child_stop_timeout)
            finally:
                self._stopping.discard(child)
        self._post(lambda now: self._scheduler.stopped(model_id, now))
