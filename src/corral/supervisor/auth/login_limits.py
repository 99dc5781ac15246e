"""How fast a client may fail to log in: sliding-window counts per client IP and per user."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginRateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after:.0f} s")
        self.retry_after = retry_after


class LoginRateLimiter:
    """Sliding-window count of failed logins per client IP and per user name.

    An IP may fail more often than a user (several people behind one NAT); a user name is
    limited from all IPs together, which stops a distributed guess at one account. Memory is
    bounded: past ``max_tracked`` names and IPs the least recently failed is forgotten.
    """

    def __init__(
        self,
        *,
        max_per_user: int = 5,
        max_per_ip: int = 20,
        window_s: float = 900.0,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.configure(max_per_user=max_per_user, max_per_ip=max_per_ip, window_s=window_s)
        self._max_tracked = max_tracked
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()  # login runs in worker threads

    def configure(self, *, max_per_user: int, max_per_ip: int, window_s: float) -> None:
        """New limits (a reload); failures already counted stay counted."""
        self._limits = {"user": max_per_user, "ip": max_per_ip}
        self._window = window_s

    def _keys(self, ip: str | None, user: str) -> list[tuple[str, str]]:
        keys = [("user", user.lower())]
        if ip:
            keys.append(("ip", ip))
        return keys

    def retry_after(self, ip: str | None, user: str) -> float:
        """Seconds until a login attempt is allowed again; 0.0 when it is allowed now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(ip, user):
                times = self._pruned(key, now)
                if times is not None and len(times) >= self._limits[key[0]]:
                    wait = max(wait, times[0] + self._window - now)
        return wait

    def failure(self, ip: str | None, user: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(ip, user):
                times = self._pruned(key, now)
                if times is None:
                    times = self._failures[key] = deque()
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self._max_tracked:
                self._failures.popitem(last=False)

    def success(self, ip: str | None, user: str) -> None:
        # Only the user's count is cleared: one valid account must not reset an IP that is
        # guessing at others.
        with self._lock:
            self._failures.pop(("user", user.lower()), None)

    def _pruned(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
