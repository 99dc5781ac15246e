"""The upstream's replicas: least-outstanding-requests choice, ejection with back-off, and
conversation affinity.

A replica that fails to connect, answers 5xx or breaks off a stream is ejected for a back-off
that doubles with each consecutive failure (up to a cap); the prober re-admits it once it
answers again. Worker threads share one pool, so every method takes its lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from corral.protocol.messages import UpstreamHealth

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
AFFINITY_ENTRIES = 4096  # conversations remembered; the oldest is forgotten first


def display_url(url: str) -> str:
    """``url`` without user:password, for logs, errors and the shelf."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclass
class Replica:
    url: str  # the base URL, e.g. http://gpu-box:8000/v1
    outstanding: int = 0
    failures: int = 0  # consecutive
    ejected_until: float | None = None
    last_error: str | None = None

    @property
    def name(self) -> str:
        return display_url(self.url)

    def health(self) -> UpstreamHealth:
        return UpstreamHealth(
            url=self.name,
            healthy=self.ejected_until is None,
            outstanding=self.outstanding,
            last_error=self.last_error,
        )


class NoReplica(Exception):
    """Every replica was tried (or is ejected) for this request."""


class ReplicaPool:
    def __init__(
        self,
        urls: list[str],
        *,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("a remote model needs at least one upstream URL")
        self.replicas = [Replica(url.rstrip("/")) for url in urls]
        self._lock = threading.Lock()
        self._affinity: OrderedDict[str, Replica] = OrderedDict()
        self._clock = clock
        self.on_change = on_change

    def acquire(self, tried: set[str], affinity: str | None = None) -> Replica:
        """The replica for the next attempt, counted as outstanding until `release`: the one
        this conversation used last while it is healthy, else the healthy replica with the
        fewest outstanding requests. With every healthy replica tried, an ejected one is
        tried too (it may be back before its back-off ends): a request never fails without
        trying every replica once."""
        with self._lock:
            untried = [r for r in self.replicas if r.url not in tried]
            if not untried:
                raise NoReplica
            healthy = [r for r in untried if r.ejected_until is None]
            sticky = self._affinity.get(affinity) if affinity is not None else None
            if sticky is not None and sticky in healthy:
                chosen = sticky
            else:
                pool = healthy or untried
                chosen = min(pool, key=lambda r: (r.outstanding, r.ejected_until or 0.0))
            chosen.outstanding += 1
            if affinity is not None:
                self._affinity[affinity] = chosen
                self._affinity.move_to_end(affinity)
                while len(self._affinity) > AFFINITY_ENTRIES:
                    self._affinity.popitem(last=False)
        self.on_change()
        return chosen

    def release(self, replica: Replica) -> None:
        with self._lock:
            replica.outstanding = max(0, replica.outstanding - 1)
        self.on_change()

    def succeeded(self, replica: Replica) -> None:
        with self._lock:
            changed = replica.ejected_until is not None or replica.last_error is not None
            replica.failures, replica.ejected_until, replica.last_error = 0, None, None
        if changed:
            self.on_change()

    def failed(self, replica: Replica, error: str) -> None:
        """Eject ``replica`` for a back-off that doubles with each consecutive failure."""
        with self._lock:
            replica.failures += 1
            backoff = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (replica.failures - 1))
            replica.ejected_until = self._clock() + backoff
            replica.last_error = error
        self.on_change()

    def due_for_probe(self) -> list[Replica]:
        """Ejected replicas whose back-off is over."""
        now = self._clock()
        with self._lock:
            return [
                r for r in self.replicas if r.ejected_until is not None and r.ejected_until <= now
            ]

    def health(self) -> tuple[UpstreamHealth, ...]:
        with self._lock:
            return tuple(r.health() for r in self.replicas)
