"""How fast a client may fail to log in: exponential back-off per client IP and per user.

Failing slows the one who fails; it never locks an account. After ``max_per_*`` failures a
key (an IP, or a user name from all IPs together) must wait 1 s after its last failure, then
2 s, 4 s and so on. An IP's wait grows to ``window_s``; a user name's only to
``max_user_delay_s``, because anyone can fail as any user: a guesser elsewhere may slow the
owner's next sign-in by that much, never keep them out (the lockout this replaced did, for 15
minutes, even with the right password). A key forgets its failures ``window_s`` after it may
try again. Memory is bounded: past ``max_tracked`` keys the least recently failed is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class LoginRateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after:.0f} s")
        self.retry_after = retry_after


class LoginRateLimiter:
    def __init__(
        self,
        *,
        max_per_user: int = 5,
        max_per_ip: int = 20,
        window_s: float = 900.0,
        max_user_delay_s: float = 30.0,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_user_delay = max_user_delay_s
        self.configure(max_per_user=max_per_user, max_per_ip=max_per_ip, window_s=window_s)
        self._max_tracked = max_tracked
        self._clock = clock
        # key -> (failures, time of the last one)
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()  # login runs in worker threads

    def configure(self, *, max_per_user: int, max_per_ip: int, window_s: float) -> None:
        """New limits (a reload); failures already counted stay counted."""
        self._free = {"user": max_per_user, "ip": max_per_ip}
        self._cap = {"user": min(self._max_user_delay, window_s), "ip": window_s}
        self._window = window_s

    def _keys(self, ip: str | None, user: str) -> list[tuple[str, str]]:
        keys = [("user", user.lower())]
        if ip:
            keys.append(("ip", ip))
        return keys

    def delay(self, kind: str, failures: int) -> float:
        over = failures - self._free[kind]
        return 0.0 if over < 0 else min(2.0 ** min(over, 60), self._cap[kind])

    def retry_after(self, ip: str | None, user: str) -> float:
        """Seconds until a login attempt is allowed again; 0.0 when it is allowed now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(ip, user):
                entry = self._current(key, now)
                if entry is not None:
                    count, last = entry
                    wait = max(wait, last + self.delay(key[0], count) - now)
        return wait

    def failure(self, ip: str | None, user: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(ip, user):
                count = (self._current(key, now) or (0, now))[0]
                self._failures[key] = (count + 1, now)
                self._failures.move_to_end(key)
            while len(self._failures) > self._max_tracked:
                self._failures.popitem(last=False)

    def success(self, ip: str | None, user: str) -> None:
        # Only the user's count is cleared: one valid account must not reset an IP that is
        # guessing at others.
        with self._lock:
            self._failures.pop(("user", user.lower()), None)

    def _current(self, key: tuple[str, str], now: float) -> tuple[int, float] | None:
        entry = self._failures.get(key)
        # Forgotten a window after it may try again, so a wait as long as the window still
        # counts the failures that earned it.
        if entry is not None and now - entry[1] - self.delay(key[0], entry[0]) >= self._window:
            del self._failures[key]
            return None
        return entry
