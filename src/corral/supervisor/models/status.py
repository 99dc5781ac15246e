"""The one read model of a model's run state, which the OpenAI and admin views both render.

The manager builds a `ModelStatus` from the scheduler's view and the child's details; times are
wall-clock unix seconds here (the scheduler counts on the monotonic clock). The state names are
the API's: the scheduler's "stopping" is shown as "unloading", and a model that never ran is
"unloaded".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from corral.protocol.messages import Stats, UpstreamHealth
from corral.supervisor.scheduling.types import ModelView, State

PublicState = Literal[
    "unloaded",
    "loading",
    "loaded",
    "unloading",
    "failed",
    "downloading",
    # A remote model that runs: how its upstream's replicas answer (remote/health.py).
    "reachable",
    "degraded",
    "unreachable",
]
_PUBLIC: dict[State, PublicState] = {
    "unloaded": "unloaded",
    "loading": "loading",
    "loaded": "loaded",
    "stopping": "unloading",
    "failed": "failed",
}


@dataclass(frozen=True)
class ModelStatus:
    model_id: str
    state: PublicState
    progress: float | None = None  # while loading
    error: str | None = None  # why it failed
    pid: int | None = None
    loaded_since: float | None = None
    last_used: float | None = None
    keep_alive_deadline: float | None = None
    in_flight: int = 0
    queued: int = 0
    restarts: int = 0
    # From the child's last stats frame (llama: its batch slots and KV cache).
    slots_busy: int = 0
    slots_total: int = 0
    cached_tokens: int = 0
    kv_parked_bytes: int = 0
    upstreams: tuple[UpstreamHealth, ...] = ()  # a remote model's replicas

    @classmethod
    def never_ran(cls, model_id: str) -> ModelStatus:
        return cls(model_id, "unloaded")

    @classmethod
    def of(
        cls,
        view: ModelView,
        *,
        monotonic_now: float,
        progress: float | None,
        pid: int | None,
        loaded_since: float | None,
        last_used: float | None,
        restarts: int,
        stats: Stats | None = None,
    ) -> ModelStatus:
        deadline = None
        if view.keep_alive_deadline is not None:
            deadline = time.time() + (view.keep_alive_deadline - monotonic_now)
        return cls(
            model_id=view.model_id,
            state=_PUBLIC[view.state],
            progress=progress if view.state == "loading" else None,
            error=view.failure if view.state == "failed" else None,
            pid=pid,
            loaded_since=loaded_since if view.state == "loaded" else None,
            last_used=last_used,
            keep_alive_deadline=deadline,
            in_flight=view.in_flight,
            queued=view.queued,
            restarts=restarts,
            slots_busy=stats.slots_busy if stats is not None else 0,
            slots_total=stats.slots_total if stats is not None else 0,
            cached_tokens=stats.cached_tokens if stats is not None else 0,
            kv_parked_bytes=stats.kv_parked_bytes if stats is not None else 0,
            upstreams=stats.upstreams if stats is not None else (),
        )
