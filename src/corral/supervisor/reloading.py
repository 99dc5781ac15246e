"""Reloading settings (SIGHUP): each service takes the settings it can change at run time.

Services register with the `Reloader` as they are built (in `services.py`), naming the fields
their ``apply`` takes in. What needs a restart is derived from that: every field that no service
applies and that no handler reads per request. A reload keeps those at their old values and
logs a warning for each one that changed, so nothing is ignored silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from corral.supervisor.settings import LiveSettings, Settings

log = logging.getLogger("corral.server")

# Fields that handlers read from `LiveSettings.current` each time they use them, so a reload
# reaches them with no service involved. `tests/test_reloading.py` checks each is read so.
READ_PER_REQUEST = frozenset(
    {
        "allowed_hosts",
        "analytics_retention_days",
        "cors_origins",
        "max_audio_bytes",
        "max_speech_input",
        "max_tokens_limit",
        "shutdown_grace",
        "sse_ping_interval",
        "ui_defaults",
        "ui_modes",
    }
)


@dataclass(frozen=True)
class Hook:
    applies: frozenset[str]
    apply: Callable[[Settings], None]


class Reloader:
    def __init__(self, live: LiveSettings) -> None:
        self.live = live
        self._hooks: list[Hook] = []

    def on(self, applies: Iterable[str], apply: Callable[[Settings], None]) -> None:
        """Call ``apply`` with the new settings on every reload; it takes in ``applies``."""
        fields = frozenset(applies)
        unknown = fields - Settings.model_fields.keys()
        if unknown:
            raise ValueError(f"no such settings: {sorted(unknown)}")
        self._hooks.append(Hook(fields, apply))

    @property
    def restart_only(self) -> frozenset[str]:
        applied = frozenset().union(*(hook.applies for hook in self._hooks))
        return frozenset(Settings.model_fields) - applied - READ_PER_REQUEST

    def reload(self, fresh: Settings) -> list[str]:
        """Apply ``fresh``; returns the restart-only settings it changes (left as they were)."""
        old = self.live.current
        keep = self.restart_only
        pending = sorted(n for n in keep if getattr(fresh, n) != getattr(old, n))
        for name in pending:
            log.warning("reload: %s changed; it takes effect after a restart", name)
        self.live.current = fresh.model_copy(update={n: getattr(old, n) for n in keep})
        for hook in self._hooks:
            hook.apply(self.live.current)
        log.info("reloaded settings")
        return pending
