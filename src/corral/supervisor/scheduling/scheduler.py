"""Which models run, and when: a pure, synchronous scheduler.

The supervisor's model manager (an asyncio actor) owns one `Scheduler`. It feeds it events (a
request arrived or ended, a load finished, a child died, time passed) and carries out the effects
each call returns, in order. Nothing here awaits, sleeps, reads the clock or touches a process:
`now` (monotonic seconds) comes in with every event, so every rule is testable with plain calls.

The rules (issue 4):

- Load on demand. Requests for a model that is loading wait for it, and concurrent first
  requests share one load.
- `max_loaded` and `memory_budget` count every model that holds memory: loading, loaded and
  stopping. To make room, evict idle models (nothing in flight), never a pinned one, least
  recently used first, and no more than needed. Wait for the evicted child to be gone
  (`stopped`) before starting the new one.
- When idle models cannot make enough room, busy ones drain instead: they admit nothing new and
  are evicted once their in-flight requests end. A model is never stopped under a request, and
  steady traffic to loaded models cannot starve a request that waits for room.
- Waiting requests form one bounded FIFO queue, retried on every event; loads start in queue
  order, so the oldest request is not overtaken by newer ones.
- A model that cannot fit even with every non-pinned model gone fails fast (`never_fits`), so
  there is no evict-reload loop.
- Keep-alive: the idle timer starts when a model's last request ends (or a load ends with no
  request). 0 stops at once, negative never; the request that leaves the model idle may
  override the period (Ollama's `keep_alive`). Pinned models ignore keep-alive.
- A crash (`exited`) marks the model failed; the next request restarts it. Crashes that come
  within `crash_window` of their load are consecutive; from the second one on, the model backs
  off exponentially and requests are refused with `crash_backoff` and a `retry_after`.

The counting behind these rules (what fits, whom to evict, what never fits) lives in
`room.py`, the idle timers in `timers.py`; this module decides when to ask and keeps the queue.

The actor's side of the contract, what it reports after each effect, is in `types.py`.
"""

from __future__ import annotations

from corral.supervisor.scheduling.room import (
    HOLDS_MEMORY,
    STAYS,
    ModelRecord,
    TicketRecord,
    Waiter,
    fits,
    load_refusal,
    room_for,
    slots,
)
from corral.supervisor.scheduling.timers import due_stops, keep_alive_deadline
from corral.supervisor.scheduling.types import (
    Admit,
    Effect,
    Limits,
    ModelSpec,
    ModelView,
    Refused,
    Reject,
    RejectCode,
    StartLoad,
    State,
    StopModel,
    StopReason,
)
from corral.supervisor.scheduling.views import model_views


class Scheduler:
    """The state machine. Every method that takes `now` returns the effects to carry out."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._models: dict[str, ModelRecord] = {}
        self._tickets: dict[str, TicketRecord] = {}
        self._queue: list[Waiter] = []

    # -- registry ----------------------------------------------------------------------------

    def register(self, spec: ModelSpec) -> None:
        """Add a model, or update one in place (its state, timers and queue stay).

        Changes take effect at the next event; call `tick(now)` to apply them at once.
        """
        model = self._models.get(spec.model_id)
        if model is None:
            self._models[spec.model_id] = ModelRecord(spec)
        else:
            model.spec = spec
            model.removed = False
            if spec.pinned and model.stop_when_idle == "evicted":
                model.stop_when_idle = None

    def unregister(self, model_id: str, now: float) -> list[Effect]:
        """Forget a model: refuse its waiters, drop its in-flight tickets, stop its child.

        A stopping child still holds memory, so the entry stays (hidden) until `stopped`.
        """
        model = self._live(model_id)
        if model is None:
            return []
        effects: list[Effect] = []
        for waiter in [w for w in self._queue if w.model_id == model_id]:
            self._queue.remove(waiter)
            if waiter.ticket is not None:
                message = f"model {model_id!r} was deleted"
                effects.append(self._reject(waiter.ticket, model_id, "unknown_model", message))
        self._drop_in_flight(model)
        if model.state in STAYS:
            effects.append(self._stop(model, "deleted"))
        if model.state == "stopping":
            model.removed = True
        else:
            del self._models[model_id]
        return effects + self._pump(now)

    # -- requests ----------------------------------------------------------------------------

    def submit(
        self, ticket: str, model_id: str, now: float, keep_alive: float | None = None
    ) -> list[Effect]:
        """A request for `model_id`. `keep_alive` sets the idle period if this request ends last."""
        if ticket in self._tickets:
            raise ValueError(f"duplicate ticket {ticket!r}")
        model = self._live(model_id)
        if model is None:
            return [Reject(ticket, model_id, "unknown_model", f"no model named {model_id!r}")]
        if model.state == "loaded" and model.stop_when_idle is None:
            self._tickets[ticket] = TicketRecord(model_id, keep_alive)
            return [self._admit(model, ticket, now)]
        if model.state not in STAYS and (
            refusal := load_refusal(self.limits, self._models.values(), model, now, admin=False)
        ):
            return [Reject(ticket, model_id, *refusal)]
        if sum(w.ticket is not None for w in self._queue) >= self.limits.max_queue:
            message = f"{self.limits.max_queue} requests are already waiting for a model"
            return [Reject(ticket, model_id, "queue_full", message)]
        self._tickets[ticket] = TicketRecord(model_id, keep_alive)
        self._queue.append(Waiter(model_id, ticket))
        return self._pump(now)

    def finish(self, ticket: str, now: float) -> list[Effect]:
        """A ticket is done: an admitted request ended, or a waiting one was withdrawn.

        Unknown tickets (already dropped by a crash or a deletion) are ignored.
        """
        entry = self._tickets.pop(ticket, None)
        if entry is None:
            return []
        model = self._models[entry.model_id]
        if entry.admitted:
            model.in_flight.discard(ticket)
            model.last_used = now
            if not model.in_flight:
                model.idle_since = now
                model.idle_keep_alive = entry.keep_alive
        else:
            self._queue = [w for w in self._queue if w.ticket != ticket]
        return self._pump(now)

    def abandon(self, ticket: str, now: float) -> list[Effect]:
        """The client went away; for the scheduler that is the same as `finish`."""
        return self.finish(ticket, now)

    # -- child lifecycle ---------------------------------------------------------------------

    def loaded(self, model_id: str, now: float) -> list[Effect]:
        model = self._models.get(model_id)
        if model is None or model.state != "loading":
            return []  # a stop overtook the load; stopped() follows
        model.state = "loaded"
        model.loaded_since = now
        model.failure = None
        return self._pump(now)

    def load_failed(self, model_id: str, reason: str, now: float) -> list[Effect]:
        """The load did not complete: everyone waiting is refused; the next request tries again."""
        model = self._models.get(model_id)
        if model is None or model.state != "loading":
            return []
        self._gone(model, "failed", reason)
        effects: list[Effect] = []
        for waiter in [w for w in self._queue if w.model_id == model_id]:
            self._queue.remove(waiter)
            if waiter.ticket is not None:
                message = f"model {model_id!r} failed to load: {reason}"
                effects.append(self._reject(waiter.ticket, model_id, "load_failed", message))
        return effects + self._pump(now)

    def exited(self, model_id: str, reason: str, now: float) -> list[Effect]:
        """The child died without being asked. Its admitted tickets are dropped (the actor fails
        them); waiting ones restart it at once, or are refused while it backs off."""
        model = self._models.get(model_id)
        if model is None:
            return []
        if model.state == "stopping":
            return self.stopped(model_id, now)
        if model.state not in STAYS:
            return []
        up_since = model.loaded_since if model.loaded_since is not None else model.load_started
        soon = up_since is not None and now - up_since <= self.limits.crash_window
        model.crash_count = model.crash_count + 1 if soon else 1
        if model.crash_count >= 2:
            exponent = min(model.crash_count - 2, 32)
            delay = min(self.limits.backoff_base * 2**exponent, self.limits.backoff_max)
            model.backoff_until = now + delay
        self._gone(model, "failed", reason)
        return self._pump(now)

    def stopped(self, model_id: str, now: float) -> list[Effect]:
        """A child is gone after `StopModel`; its memory is free, and waiters may reload it."""
        model = self._models.get(model_id)
        if model is None or model.state not in HOLDS_MEMORY:
            return []
        self._gone(model, "unloaded", None)
        if model.removed:
            del self._models[model_id]
        return self._pump(now)

    # -- admin -------------------------------------------------------------------------------

    def load(self, model_id: str, now: float) -> list[Effect]:
        """Preload without a request; the idle timer applies once loaded.

        An explicit operator action, so it ignores crash back-off. It takes its turn in the queue
        (without counting toward `max_queue`) and cancels a pending admin unload.
        """
        model = self._live(model_id)
        if model is None:
            raise Refused("unknown_model", f"no model named {model_id!r}")
        if model.state == "loading":
            return []
        if model.state == "loaded":
            if model.stop_when_idle == "unload":
                model.stop_when_idle = None
            return self._pump(now)
        refusal = load_refusal(self.limits, self._models.values(), model, now, admin=True)
        if refusal is not None:
            raise Refused(refusal[0], refusal[1])
        if Waiter(model_id, None) not in self._queue:
            self._queue.append(Waiter(model_id, None))
        return self._pump(now)

    def unload(self, model_id: str, now: float) -> list[Effect]:
        """Stop a model as soon as nothing is in flight on it.

        Until then it admits nothing new: later requests wait and load a fresh child after
        `stopped`. A loading model is stopped at once; a pending preload is cancelled.
        """
        model = self._live(model_id)
        if model is None:
            raise Refused("unknown_model", f"no model named {model_id!r}")
        self._queue = [w for w in self._queue if w != Waiter(model_id, None)]
        effects: list[Effect] = []
        if model.state == "loading":
            effects.append(self._stop(model, "unload"))
        elif model.state == "loaded":
            model.stop_when_idle = "unload"
        return effects + self._pump(now)

    # -- time and views ----------------------------------------------------------------------

    def tick(self, now: float) -> list[Effect]:
        """Fire due timers (keep-alive expiry)."""
        return self._pump(now)

    def next_deadline(self) -> float | None:
        deadlines = [d for m in self._models.values() if (d := self._deadline(m)) is not None]
        return min(deadlines, default=None)

    def snapshot(self) -> dict[str, ModelView]:
        return model_views(self.limits, self._models, [w.model_id for w in self._queue if w.ticket])

    # -- internals ---------------------------------------------------------------------------

    def _live(self, model_id: str) -> ModelRecord | None:
        model = self._models.get(model_id)
        return None if model is None or model.removed else model

    def _pump(self, now: float) -> list[Effect]:
        """Bring everything up to date after an event: admit, load or refuse waiters, then look
        after idle models. Running it after every event is what makes waiting requests retry."""
        effects = self._admit_waiters(now)
        effects += self._start_loads(now)
        effects += self._admit_waiters(now)  # for models whose drain was called off
        effects += self._settle(now)
        return effects

    def _admit_waiters(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        remaining: list[Waiter] = []
        for waiter in self._queue:
            model = self._models[waiter.model_id]
            if model.state != "loaded" or model.stop_when_idle is not None:
                remaining.append(waiter)
            elif waiter.ticket is not None:
                effects.append(self._admit(model, waiter.ticket, now))
        self._queue = remaining
        return effects

    def _start_loads(self, now: float) -> list[Effect]:
        """Walk the queue oldest first, refusing, loading or making room.

        Room is made by evicting idle models at once and draining busy ones (no new admits; they
        are evicted when their requests end), so a waiting request is never starved by traffic
        to loaded models. Drains are decided afresh each time, so one is called off when an idle
        model can make the room instead, or when no one needs it any more. Once one waiter cannot
        get room even so (loads in progress hold it), later ones may not take room either, though
        they can still be refused.
        """
        effects: list[Effect] = []
        planned: list[ModelRecord] = []  # will load once stopping or draining models are gone
        blocked = False
        draining = [m for m in self._models.values() if m.stop_when_idle == "evicted"]
        for m in draining:
            m.stop_when_idle = None
        for waiter in list(self._queue):
            model = self._models[waiter.model_id]
            if model.state not in ("unloaded", "failed") or model in planned:
                continue  # waiting on its own load or stop, or on the same load as an earlier one
            refusal = load_refusal(
                self.limits, self._models.values(), model, now, admin=waiter.ticket is None
            )
            if refusal is not None:
                self._queue.remove(waiter)
                if waiter.ticket is not None:
                    effects.append(self._reject(waiter.ticket, model.model_id, *refusal))
                continue
            if blocked:
                continue
            victims = room_for(self.limits, self._models.values(), model, planned, draining)
            if victims is None:
                blocked = True
                continue
            for victim in victims:
                if victim.in_flight:
                    victim.stop_when_idle = "evicted"
                else:
                    effects.append(self._stop(victim, "evicted"))
            holding = [m for m in self._models.values() if m.state in HOLDS_MEMORY]
            if fits(self.limits, model, slots(holding), sum(m.spec.footprint for m in holding)):
                effects.append(self._start(model, now))
            else:
                planned.append(model)
        return effects

    def _settle(self, now: float) -> list[Effect]:
        return [self._stop(m, reason) for m, reason in due_stops(self.limits, self._models, now)]

    def _deadline(self, model: ModelRecord) -> float | None:
        return keep_alive_deadline(self.limits, model)

    def _admit(self, model: ModelRecord, ticket: str, now: float) -> Admit:
        self._tickets[ticket].admitted = True
        model.in_flight.add(ticket)
        model.last_used = now
        model.idle_since = model.idle_keep_alive = None
        return Admit(ticket, model.model_id)

    def _reject(
        self,
        ticket: str,
        model_id: str,
        code: RejectCode,
        message: str,
        retry_after: float | None = None,
    ) -> Reject:
        self._tickets.pop(ticket, None)
        return Reject(ticket, model_id, code, message, retry_after)

    def _start(self, model: ModelRecord, now: float) -> StartLoad:
        model.state = "loading"
        model.load_started = now
        model.loaded_since = model.backoff_until = None
        return StartLoad(model.model_id)

    def _stop(self, model: ModelRecord, reason: StopReason) -> StopModel:
        model.state = "stopping"
        model.idle_since = model.idle_keep_alive = None
        model.stop_when_idle = None
        return StopModel(model.model_id, reason)

    def _gone(self, model: ModelRecord, state: State, failure: str | None) -> None:
        """The child no longer exists (stopped, crashed or failed to load)."""
        self._drop_in_flight(model)
        model.state = state
        model.failure = failure
        model.load_started = model.loaded_since = None
        model.idle_since = model.idle_keep_alive = None
        model.stop_when_idle = None

    def _drop_in_flight(self, model: ModelRecord) -> None:
        for ticket in model.in_flight:
            del self._tickets[ticket]
        model.in_flight.clear()
