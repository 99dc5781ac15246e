"""The scheduler's vocabulary: limits, model specs, effects and views (all immutable).

The actor's side of the contract:

- After `StartLoad(m)`: report exactly one of `loaded`, `load_failed` or `exited` for it, unless
  a `StopModel(m)` came first; then only `stopped` matters (late reports are ignored).
- After `StopModel(m)`: report `stopped(m)` once the child is gone (`exited` on a stopping model
  is taken as `stopped`).
- After `Admit(t)`: call `finish(t)` or `abandon(t)` when the request ends. Tickets dropped by
  `exited`, `stopped` or `unregister` fail in the actor; finishing them later is a no-op.
- After every call: sleep until `next_deadline()` and then call `tick`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

State = Literal["unloaded", "loading", "loaded", "stopping", "failed"]
RejectCode = Literal["queue_full", "never_fits", "load_failed", "crash_backoff", "unknown_model"]
StopReason = Literal["evicted", "keep_alive", "unload", "deleted"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_loaded: int = 3
    """Models loading, loaded or stopping at once."""
    memory_budget: int = 0
    """Bytes for all those models' footprints; 0 is unlimited."""
    max_queue: int = 64
    """Requests waiting (all models together) before new ones are refused."""
    default_keep_alive: float = 300.0
    """Seconds idle before a stop; negative never, 0 at once."""
    backoff_base: float = 2.0
    """Back-off after the second consecutive crash; doubles with each further one."""
    backoff_max: float = 60.0
    crash_window: float = 60.0
    """A crash this soon after the model loaded counts as consecutive; staying up longer resets."""

    def __post_init__(self) -> None:
        if self.max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        if self.memory_budget < 0 or self.max_queue < 0:
            raise ValueError("memory_budget and max_queue must not be negative")
        if min(self.backoff_base, self.backoff_max, self.crash_window) < 0:
            raise ValueError("back-off times and crash_window must not be negative")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    model_id: str
    footprint: int
    """Estimated bytes while loaded."""
    keep_alive: float | None = None
    """Idle seconds before a stop; None takes `Limits.default_keep_alive`."""
    pinned: bool = False
    """Never evicted and never stopped by keep-alive (an admin unload still works)."""
    takes_slot: bool = True
    """Counts against `Limits.max_loaded`; False for a remote model, whose engine runs
    elsewhere (its child is a small HTTP client)."""

    def __post_init__(self) -> None:
        if not self.model_id or self.footprint < 0:
            raise ValueError("a model needs an id and a non-negative footprint")


@dataclass(frozen=True, slots=True)
class StartLoad:
    model_id: str


@dataclass(frozen=True, slots=True)
class StopModel:
    model_id: str
    reason: StopReason


@dataclass(frozen=True, slots=True)
class Admit:
    ticket: str
    model_id: str


@dataclass(frozen=True, slots=True)
class Reject:
    ticket: str
    model_id: str
    code: RejectCode
    message: str
    retry_after: float | None = None


Effect: TypeAlias = StartLoad | StopModel | Admit | Reject


@dataclass(frozen=True, slots=True)
class ModelView:
    model_id: str
    state: State
    in_flight: int
    queued: int
    last_used: float | None
    loaded_since: float | None
    keep_alive_deadline: float | None
    failure: str | None
    crash_count: int
    footprint: int
    pinned: bool
    backoff_until: float | None
    stop_when_idle: StopReason | None
    """"unload": an admin unload waits for in-flight requests; "evicted": draining to make room."""


class Refused(Exception):
    """An admin command (`load`, `unload`) that cannot be carried out; requests get `Reject`."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code: RejectCode = code
        self.message = message
