"""systemd's service notification protocol (sd_notify(3)), without libsystemd.

Each notification is one datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``). Outside systemd
the variable is unset and every call is a no-op. A failed send is logged and swallowed: a
broken notify socket must never take the daemon down.

Lifecycle, as systemd expects it from a ``Type=notify`` service:
``ready()`` once the listening socket accepts connections; ``status(text)`` whenever the
one-line summary changes; ``reloading()`` when SIGHUP starts a reload, then ``ready()`` again
when it is done; ``stopping()`` when shutdown starts; and ``watchdog()`` every
``watchdog_interval()`` seconds from the event loop (``run_watchdog``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["CHILD_ENV_DROP", "Notifier", "run_watchdog"]

logger = logging.getLogger(__name__)

#: Variables a child process must not inherit: they address the supervisor's notify socket.
CHILD_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _socket_address(value: str) -> str | None:
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


class Notifier:
    """Sends notifications to systemd; a no-op when ``address`` is None."""

    __slots__ = ("_address", "_failing", "_watchdog_usec")

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        raw = environ.get("NOTIFY_SOCKET", "")
        address = _socket_address(raw) if raw else None
        if raw and address is None:
            logger.warning("sd_notify: unsupported NOTIFY_SOCKET %r, notifications disabled", raw)
        return cls(address, _watchdog_usec(environ))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        fields = ["READY=1"]
        if status is not None:
            fields.append(f"STATUS={_one_line(status)}")
        return self.send(*fields)

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def reloading(self) -> bool:
        # systemd 253+ (Type=notify-reload) wants the monotonic timestamp with RELOADING=1;
        # older versions ignore the extra field.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of WatchdogSec=), or None when not asked."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def send(self, *fields: str) -> bool:
        """Sends ``fields`` as one datagram; True if it was sent, False if disabled or failed."""
        if self._address is None or not fields:
            return False
        payload = "\n".join(fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop on a full receive queue: drop and log instead.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except OSError as exc:
            # Log the first failure loudly and repeats quietly, until a send succeeds again.
            level = logging.DEBUG if self._failing else logging.WARNING
            logger.log(level, "sd_notify: sending %s failed: %s", fields[0], exc)
            self._failing = True
            return False
        self._failing = False
        return True


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    raw_pid = environ.get("WATCHDOG_PID")
    if raw_pid is not None and raw_pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


async def run_watchdog(notifier: Notifier, interval: float) -> None:
    """Pings ``WATCHDOG=1`` every ``interval`` seconds until cancelled.

    The pings come from the event loop itself, so a loop that stops turning stops them too and
    systemd restarts the service after WatchdogSec=.
    """
    if interval <= 0:
        raise ValueError(f"watchdog interval must be positive, got {interval}")
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
