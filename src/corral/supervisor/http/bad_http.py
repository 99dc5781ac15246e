"""Malformed HTTP is the client's fault: one line at info level, not a traceback per request.

aiohttp answers a request it cannot parse (a bad header byte, a broken request line) with a
400 before any of our code runs, and logs it at error level with the parser's traceback, so
any scanner on the network could flood the log with error-level noise. This filter, installed
on aiohttp's server logger, turns those records into one line at info level.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError


class BadHttpFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and error.code < 500:
            reason = " ".join(str(error.message).split())[:200]
            record.msg = "malformed HTTP request from %s: %s"
            record.args = ((record.args or ("-",))[0], reason)  # type: ignore[index]
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadHttpFilter) for f in logger.filters):
        logger.addFilter(BadHttpFilter())
