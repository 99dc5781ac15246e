"""Room for one more model: what fits under the limits, whom to evict, what never fits.

Pure functions over the scheduler's model records. `scheduler.py` decides when to ask and
carries out the answer; this module only does the counting, so the eviction policy reads in
one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from corral.supervisor.scheduling.types import Limits, ModelSpec, RejectCode, State, StopReason

HOLDS_MEMORY: frozenset[State] = frozenset({"loading", "loaded", "stopping"})
STAYS: frozenset[State] = frozenset({"loading", "loaded"})


@dataclass(eq=False, slots=True)
class ModelRecord:
    """The scheduler's mutable record of one model."""

    spec: ModelSpec
    state: State = "unloaded"
    in_flight: set[str] = field(default_factory=set)
    last_used: float | None = None
    load_started: float | None = None
    loaded_since: float | None = None
    idle_since: float | None = None
    idle_keep_alive: float | None = None  # the per-request override for this idle period
    stop_when_idle: StopReason | None = None  # no new admits; stop when in-flight requests end
    failure: str | None = None
    crash_count: int = 0
    backoff_until: float | None = None
    removed: bool = False  # unregistered, but its child still holds memory until stopped()

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @property
    def lru_key(self) -> tuple[float, str]:
        used = self.last_used if self.last_used is not None else self.loaded_since
        return (used if used is not None else 0.0, self.model_id)


@dataclass(slots=True)
class TicketRecord:
    """A request the scheduler knows: queued, or admitted to its model."""

    model_id: str
    keep_alive: float | None
    admitted: bool = False


@dataclass(frozen=True, slots=True)
class Waiter:
    """A place in the load queue."""

    model_id: str
    ticket: str | None  # None: an admin preload, which no one waits on


def slots(models: Iterable[ModelRecord]) -> int:
    """How many of `max_loaded`'s model slots `models` take (remote models take none)."""
    return sum(1 for m in models if m.spec.takes_slot)


def fits(limits: Limits, model: ModelRecord, count: int, memory: int) -> bool:
    """Whether `model` fits beside models taking `count` slots and holding `memory` bytes."""
    budget = limits.memory_budget
    within_budget = budget == 0 or memory + model.spec.footprint <= budget
    return (not model.spec.takes_slot or count + 1 <= limits.max_loaded) and within_budget


def room_for(
    limits: Limits,
    models: Iterable[ModelRecord],
    model: ModelRecord,
    planned: list[ModelRecord],
    draining: list[ModelRecord],
) -> list[ModelRecord] | None:
    """The models to evict so that `model` fits once stopping and draining ones are gone, or
    None when loads in progress leave no room yet. Idle models go first, then busy ones
    (those already draining first, so a drain is not switched to another model), least
    recently used first; victims that prove needless are spared."""
    staying = [m for m in models if m.state in STAYS and m.stop_when_idle is None]
    staying += planned
    count, memory = slots(staying), sum(m.spec.footprint for m in staying)
    candidates = sorted(
        (m for m in staying if m.state == "loaded" and not m.spec.pinned),
        key=lambda m: (bool(m.in_flight), m not in draining, m.lru_key),
    )
    victims: list[ModelRecord] = []
    for candidate in candidates:
        if fits(limits, model, count, memory):
            break
        victims.append(candidate)
        count, memory = count - slots([candidate]), memory - candidate.spec.footprint
    if not fits(limits, model, count, memory):
        return None
    for victim in reversed(victims[:-1]):
        if fits(limits, model, count + slots([victim]), memory + victim.spec.footprint):
            victims.remove(victim)
            count, memory = count + slots([victim]), memory + victim.spec.footprint
    return victims


def load_refusal(
    limits: Limits,
    models: Iterable[ModelRecord],
    model: ModelRecord,
    now: float,
    *,
    admin: bool,
) -> tuple[RejectCode, str, float | None] | None:
    """Why a model that is not loaded cannot load now: it never fits, or it is backing off
    (which an operator's explicit load, `admin`, overrides)."""
    budget, footprint, name = limits.memory_budget, model.spec.footprint, model.model_id
    if budget and footprint > budget:
        return "never_fits", f"{name!r} needs {footprint} bytes; the budget is {budget}", None
    pinned = [
        m
        for m in models
        if m is not model and m.spec.pinned and m.state in STAYS and m.stop_when_idle is None
    ]
    if model.spec.takes_slot and slots(pinned) >= limits.max_loaded:
        return "never_fits", f"pinned models take all {slots(pinned)} model slots", None
    pinned_memory = sum(m.spec.footprint for m in pinned)
    if budget and footprint + pinned_memory > budget:
        message = (
            f"{name!r} needs {footprint} bytes; pinned models hold {pinned_memory} "
            f"of the {budget} byte budget"
        )
        return "never_fits", message, None
    until = model.backoff_until
    if not admin and model.state == "failed" and until is not None and now < until:
        message = f"{name!r} crashed {model.crash_count} times in a row: {model.failure}"
        return "crash_backoff", message, until - now
    return None
