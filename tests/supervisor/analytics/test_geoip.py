"""Country lookups from a small .mmdb that the tests build themselves."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.supervisor.analytics.geoip import GeoIP
from tests.support_mmdb import build_country_mmdb


@pytest.fixture
def geoip(tmp_path: Path) -> Iterator[GeoIP]:
    path = build_country_mmdb(
        tmp_path / "country.mmdb",
        {"81.2.69.0/24": "GB", "2a02:cf40::/29": "NO", "10.0.0.0/8": "DE"},
        registered_only={"1.0.0.0/24": "AU"},
    )
    reader = GeoIP(path)
    yield reader
    reader.close()


def test_country_of_public_addresses(geoip: GeoIP) -> None:
    assert geoip.available
    assert geoip.country("81.2.69.160") == "GB"
    assert geoip.country("2a02:cf40::1") == "NO"
    assert geoip.country("::ffff:81.2.69.1") == "GB"


def test_registered_country_is_the_fallback(geoip: GeoIP) -> None:
    assert geoip.country("1.0.0.1") == "AU"


def test_unknown_address_has_no_country(geoip: GeoIP) -> None:
    assert geoip.country("8.8.8.8") is None
    assert geoip.country("2001:4860::8888") is None


def test_private_and_loopback_addresses_are_never_looked_up(geoip: GeoIP) -> None:
    # The database maps 10/8 to DE, but a private address must not get a country.
    for address in ("10.1.2.3", "127.0.0.1", "::1", "192.168.1.1", "fe80::1", "fd00::1"):
        assert geoip.country(address) is None, address


def test_garbage_and_missing_input(geoip: GeoIP) -> None:
    assert geoip.country(None) is None
    assert geoip.country("") is None
    assert geoip.country("not an ip") is None


def test_no_database_configured_means_no_country() -> None:
    geoip = GeoIP(None)
    assert not geoip.available
    assert geoip.country("81.2.69.160") is None
    assert not geoip.reload()
    assert not geoip.reload_if_changed()
    geoip.close()


def test_missing_or_corrupt_file_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="corral.geoip"):
        missing = GeoIP(tmp_path / "nope.mmdb")
        corrupt_path = tmp_path / "corrupt.mmdb"
        corrupt_path.write_bytes(b"this is not a maxmind database" * 10)
        corrupt = GeoIP(corrupt_path)
    assert not missing.available
    assert not corrupt.available
    assert corrupt.country("81.2.69.160") is None
    assert "nope.mmdb" in caplog.text
    assert "corrupt.mmdb" in caplog.text


def test_ipv6_lookup_in_an_ipv4_only_database(tmp_path: Path) -> None:
    path = build_country_mmdb(tmp_path / "v4.mmdb", {"81.2.69.0/24": "GB"}, ip_version=4)
    geoip = GeoIP(path)
    try:
        assert geoip.country("81.2.69.7") == "GB"
        assert geoip.country("2a02:cf40::1") is None
    finally:
        geoip.close()


@pytest.mark.parametrize("in_memory", [True, False])
def test_reload_picks_up_a_replaced_file(tmp_path: Path, in_memory: bool) -> None:
    path = build_country_mmdb(tmp_path / "c.mmdb", {"81.2.69.0/24": "GB"})
    geoip = GeoIP(path, in_memory=in_memory)
    try:
        assert not geoip.reload_if_changed()  # unchanged
        replacement = build_country_mmdb(tmp_path / "new.mmdb", {"81.2.69.0/24": "SE"})
        os.replace(replacement, path)  # how geoipupdate swaps files
        assert geoip.reload_if_changed()
        assert geoip.country("81.2.69.7") == "SE"
    finally:
        geoip.close()


def test_overwrite_in_place_and_failed_reload_keep_the_old_data(tmp_path: Path) -> None:
    path = build_country_mmdb(tmp_path / "c.mmdb", {"81.2.69.0/24": "GB"})
    geoip = GeoIP(path)
    try:
        # Not an atomic rename: a memory-mapped reader would now read garbage.
        path.write_bytes(b"broken")
        assert not geoip.reload()
        assert geoip.country("81.2.69.7") == "GB"
    finally:
        geoip.close()
    assert geoip.country("81.2.69.7") is None  # closed
