"""Header values as text that can go anywhere: logs, SQLite, hashes, JSON.

aiohttp decodes header bytes as UTF-8 with ``surrogateescape``, so a byte such as ``\\xff``
arrives as a lone surrogate that every later UTF-8 encode refuses (SQLite rejected the whole
analytics batch; hashing a bearer token raised). Headers are read through here, which turns
such bytes into U+FFFD once, at the edge.
"""

from __future__ import annotations

from aiohttp import web


def safe_text(value: str) -> str:
    """``value`` with undecodable bytes (and any other lone surrogate) as U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that was not an escaped byte
        return value.encode("utf-8", "replace").decode("utf-8")


def header(request: web.Request, name: str) -> str | None:
    value = request.headers.get(name)
    return None if value is None else safe_text(value)


def header_values(request: web.Request, name: str) -> list[str]:
    return [safe_text(v) for v in request.headers.getall(name, [])]
