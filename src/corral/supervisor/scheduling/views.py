"""What the scheduler shows: an immutable view per model, republished after every event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from corral.supervisor.scheduling.room import ModelRecord
from corral.supervisor.scheduling.timers import keep_alive_deadline
from corral.supervisor.scheduling.types import Limits, ModelView


def model_views(
    limits: Limits, models: Mapping[str, ModelRecord], queued_for: Iterable[str]
) -> dict[str, ModelView]:
    """One view per model still registered; ``queued_for`` names each waiting request's model."""
    queued = Counter(queued_for)
    return {
        m.model_id: ModelView(
            model_id=m.model_id,
            state=m.state,
            in_flight=len(m.in_flight),
            queued=queued[m.model_id],
            last_used=m.last_used,
            loaded_since=m.loaded_since,
            keep_alive_deadline=keep_alive_deadline(limits, m),
            failure=m.failure,
            crash_count=m.crash_count,
            footprint=m.spec.footprint,
            pinned=m.spec.pinned,
            backoff_until=m.backoff_until if m.state == "failed" else None,
            stop_when_idle=m.stop_when_idle,
        )
        for m in models.values()
        if not m.removed
    }
