"""Structured log lines for journald: one line per event, ``key=value`` after the message.

Every line carries the level and the component (the logger's last name part); ``model`` and
``request_id`` are added when the call passes them in ``extra``.
"""

from __future__ import annotations

import logging
import sys

_CONTEXT_FIELDS = ("model", "request_id", "conversation_id", "status", "duration_ms")


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        component = record.name.removeprefix("corral.") or "corral"
        parts = [f"level={record.levelname.lower()}", f"component={component}"]
        for key in _CONTEXT_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                parts.append(f"{key}={value}")
        message = record.getMessage().replace("\n", "\\n")
        line = f"{' '.join(parts)} msg={message!r}"
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return line


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
