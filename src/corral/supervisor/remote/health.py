"""A remote model's shelf state from its replicas' health (the child's last stats frame)."""

from __future__ import annotations

from collections.abc import Sequence

from corral.protocol.messages import UpstreamHealth
from corral.supervisor.models.status import PublicState


def remote_state(upstreams: Sequence[UpstreamHealth]) -> tuple[PublicState, str | None]:
    """reachable (every replica answers), degraded (some do), unreachable (none), with the
    last error of a replica that does not answer."""
    down = [u for u in upstreams if not u.healthy]
    error = next((u.last_error for u in down if u.last_error), None)
    if not down:
        return "reachable", None
    if len(down) < len(upstreams):
        return "degraded", error
    return "unreachable", error
