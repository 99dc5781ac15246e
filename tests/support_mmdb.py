"""Builds a small MaxMind-format country database for the GeoIP tests.

Written with mmdb-writer, in the layout of GeoLite2-Country: an IPv6 tree with the IPv4 space
mapped in, and records like ``{"country": {"iso_code": "DE", "names": {"en": ...}}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

# Public ranges the tests look up (81.2.69.0/24 is the GB range of MaxMind's own test data).
# Documentation ranges such as TEST-NET-3 are not global, so GeoIP never looks them up.
DEFAULT_COUNTRIES: dict[str, str] = {
    "81.2.69.0/24": "GB",
    "89.160.20.0/24": "SE",
    "2a02:cf40::/29": "NO",
}
_NAMES = {"GB": "United Kingdom", "SE": "Sweden", "NO": "Norway", "DE": "Germany"}


def build_country_mmdb(
    path: Path,
    countries: Mapping[str, str] = DEFAULT_COUNTRIES,
    *,
    registered_only: Mapping[str, str] | None = None,
    ip_version: int = 6,
) -> Path:
    """Write ``path`` mapping each network to its ISO code; ``registered_only`` networks get only
    ``registered_country`` (as anycast / satellite ranges do in GeoLite2). ``ip_version=4``
    makes an IPv4-only database, as some free databases are."""
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type="GeoLite2-Country",
        languages=["en"],
        description={"en": "Corral test database"},
    )
    for network, code in countries.items():
        record = {"iso_code": code, "names": {"en": _NAMES.get(code, code)}}
        writer.insert_network(IPSet([network]), {"country": record})
    for network, code in (registered_only or {}).items():
        writer.insert_network(IPSet([network]), {"registered_country": {"iso_code": code}})
    writer.to_db_file(str(path))
    return path
