"""A share of the stream memory per key or user, so that one of them cannot lock out the rest.

The registry caps all sessions together (``stream_total_bytes``); the web UI opens a resumable
stream for every answer, so one key holding 64 of them answered everyone else 503. Each owner
(a key, a user, or everyone while auth is off) may hold at most ``per_owner_bytes`` of the
accounting (a running session counts its whole ring). An owner over its share first loses its
own oldest finished sessions (their answers are over; only the replay goes), and only when its
running ones alone fill the share is the new one refused, with 429 for that owner alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.supervisor.errors import TooManyRequests
from corral.supervisor.streams.sessions import SessionRegistry


@dataclass
class OwnerQuota:
    registry: SessionRegistry
    per_owner_bytes: int

    def admit(self, conversation_id: str, owner: str | None) -> None:
        """Make room for one more session of ``owner`` (replacing ``conversation_id``) or raise."""
        registry = self.registry
        mine = [s for s in registry.owned_by(owner) if s.conversation_id != conversation_id]
        used = sum(registry.cost(s) for s in mine)
        finished = sorted((s for s in mine if s.finished), key=lambda s: s.finished_at or 0.0)
        for session in finished:
            if used + registry.ring_capacity <= self.per_owner_bytes:
                break
            registry.forget(session)
            used -= registry.cost(session)
        if used + registry.ring_capacity > self.per_owner_bytes:
            running = sum(1 for s in mine if not s.finished)
            raise TooManyRequests(
                f"this key or user already has {running} resumable streams running; "
                "wait for one to finish or stop one",
                code="stream_owner_limit",
                headers={"Retry-After": "5"},
            )
