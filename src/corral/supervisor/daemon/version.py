"""Facts about this installation that several routes report."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def corral_version() -> str:
    try:
        return version("corral")
    except PackageNotFoundError:
        return "0+unknown"
