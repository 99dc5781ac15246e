"""A request's hold on a loaded model, and the manager's record of each model's child."""

from __future__ import annotations

from dataclasses import dataclass

from corral.supervisor.child_process import ChildProcess


@dataclass(frozen=True)
class Lease:
    """An admitted request's hold on a loaded model; release it when the request ends."""

    model_id: str
    ticket: str
    child: ChildProcess


@dataclass
class ChildRecord:
    """What the manager keeps of one model's child between its scheduler events."""

    child: ChildProcess | None = None
    progress: float | None = None
    wall_loaded_since: float | None = None
    wall_last_used: float | None = None
    restarts: int = 0
    kill_reason: str | None = None  # why the supervisor killed its child, for the failure
