"""Facts about this installation that several routes report."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version


@functools.cache  # importlib.metadata scans sys.path: once per process, not per request
def corral_version() -> str:
    try:
        return version("corral")
    except PackageNotFoundError:
        return "0+unknown"
