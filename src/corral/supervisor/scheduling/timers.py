"""The scheduler's clocks: when an idle model's keep-alive runs out, and what is due to stop.

Pure functions of the model records and the limits; the scheduler turns what they return into
`StopModel` effects.
"""

from __future__ import annotations

from collections.abc import Mapping

from corral.supervisor.scheduling.room import ModelRecord
from corral.supervisor.scheduling.types import Limits, StopReason


def keep_alive_deadline(limits: Limits, model: ModelRecord) -> float | None:
    """When an idle, loaded model stops by itself; None while busy, pinned or kept forever."""
    if model.state != "loaded" or model.in_flight or model.idle_since is None:
        return None
    if model.spec.pinned or model.stop_when_idle is not None:
        return None
    keep_alive = model.idle_keep_alive
    if keep_alive is None:
        keep_alive = model.spec.keep_alive
    if keep_alive is None:
        keep_alive = limits.default_keep_alive
    return None if keep_alive < 0 else model.idle_since + keep_alive


def due_stops(
    limits: Limits, models: Mapping[str, ModelRecord], now: float
) -> list[tuple[ModelRecord, StopReason]]:
    """Start idle timers, reset crash streaks, and name the models to stop now: expired ones
    and idle ones marked to stop when idle (admin unload, eviction drain)."""
    due: list[tuple[ModelRecord, StopReason]] = []
    for model in models.values():
        if model.state != "loaded":
            continue
        since = model.loaded_since
        if since is not None and now - since > limits.crash_window:
            model.crash_count = 0
        if model.in_flight:
            continue
        if model.stop_when_idle is not None:
            due.append((model, model.stop_when_idle))
        else:  # idle: the admit pass has just served any waiters of a loaded model
            if model.idle_since is None:
                model.idle_since = now
            deadline = keep_alive_deadline(limits, model)
            if deadline is not None and deadline <= now:
                due.append((model, "keep_alive"))
    return due
