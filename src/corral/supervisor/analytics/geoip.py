"""Country of an IP address from a MaxMind-format ``.mmdb`` file.

Works with GeoLite2-Country/City, DB-IP Lite Country/City and any database whose records carry
``country.iso_code`` (or only ``registered_country.iso_code``). Without a database every lookup
is None and the rest of Corral does not notice.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import maxminddb

from corral.supervisor.http.client_address import parse_address

log = logging.getLogger("corral.geoip")


class GeoIP:
    """A reloadable reader. A database that cannot be opened is logged and treated as absent:
    losing the country column is better than refusing to serve."""

    def __init__(self, path: str | Path | None, *, in_memory: bool = True) -> None:
        self.path = Path(path) if path else None
        # In memory by default: a memory-mapped file that someone overwrites in place (cp
        # instead of an atomic rename) turns lookups into garbage or a SIGBUS that kills the
        # supervisor. Country databases are a few MB; a lookup then costs tens of microseconds
        # instead of one, which the analytics writer's thread does not notice.
        self._mode = maxminddb.MODE_MEMORY if in_memory else maxminddb.MODE_MMAP_EXT
        # Guards the swap in reload() against a lookup from another thread (the analytics
        # writer enriches rows in a worker thread).
        self._lock = threading.Lock()
        self._reader: maxminddb.Reader | None = None
        self._stamp: tuple[int, int] | None = None
        if self.path is not None:
            self.reload()

    @property
    def available(self) -> bool:
        return self._reader is not None

    def country(self, ip: str | None) -> str | None:
        """ISO 3166-1 alpha-2 code, e.g. ``"DE"``; None for private, loopback, unknown or no db."""
        address = parse_address(ip)
        if address is None or not address.is_global:
            return None
        with self._lock:
            reader = self._reader
            if reader is None:
                return None
            try:
                record = reader.get(address)
            except ValueError:
                # An IPv6 address against an IPv4-only database.
                return None
        return _iso_code(record)

    def reload(self) -> bool:
        """(Re)open the file; True on success. On failure the previous reader stays in use."""
        if self.path is None:
            return False
        try:
            stamp = _stamp(self.path)
            reader = maxminddb.open_database(self.path, self._mode)
        except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
            log.warning("GeoIP database %s not usable, countries stay empty: %s", self.path, exc)
            return False
        with self._lock:
            old, self._reader, self._stamp = self._reader, reader, stamp
        if old is not None:
            old.close()
        log.info("GeoIP database %s loaded (%s)", self.path, reader.metadata().database_type)
        return True

    def use(self, path: str | Path | None) -> None:
        """Switch to another database file (a reload with a new ``geoip_database``)."""
        new = Path(path) if path else None
        if new == self.path:
            self.reload_if_changed()
            return
        self.path = new
        if new is None:
            self.close()
            self._stamp = None
        elif not self.reload():
            self.close()  # a bad new path: no countries rather than the old file's

    def reload_if_changed(self) -> bool:
        """Reload when the file's mtime or size changed (e.g. after a geoipupdate run)."""
        if self.path is None:
            return False
        try:
            stamp = _stamp(self.path)
        except OSError:
            return False
        return stamp != self._stamp and self.reload()

    def close(self) -> None:
        with self._lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def _iso_code(record: object) -> str | None:
    if not isinstance(record, dict):
        return None
    for key in ("country", "registered_country"):
        section = record.get(key)
        if isinstance(section, dict):
            code = section.get("iso_code")
            if isinstance(code, str) and code:
                return code.upper()
    return None
