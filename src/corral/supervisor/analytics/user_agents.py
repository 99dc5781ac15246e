"""Browser, OS and device from a User-Agent header, with ua-parser and its bundled rules.

An uncached parse tries hundreds of regular expressions (milliseconds), and a server sees the
same few User-Agent strings over and over, so results go through an LRU cache per parser.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ua_parser import BasicResolver, Domain, Parser, load_lazy_builtins

DEFAULT_CACHE_SIZE = 2048
# Longer headers are cut before parsing and storing: they are junk or an attack, and they would
# otherwise bloat the cache and the analytics table.
MAX_USER_AGENT_CHARS = 512


@dataclass(frozen=True)
class UserAgentInfo:
    browser: str | None  # family and major version, e.g. "Firefox 121"
    os: str | None  # family and version, e.g. "Windows 10", "iOS 17.1"
    device: str | None  # ua-parser's device family, e.g. "iPhone", "Pixel 7", "Spider"


_EMPTY = UserAgentInfo(None, None, None)


class UserAgentParser:
    """Thread-safe; the cache lives in the instance, not the module."""

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        # Lazy builtins compile each rule on first use, so start-up stays fast.
        self._parser = Parser(BasicResolver(load_lazy_builtins()))
        self._cached = functools.lru_cache(maxsize=cache_size)(self._parse_uncached)

    def parse(self, user_agent: str | None) -> UserAgentInfo:
        if not user_agent:
            return _EMPTY
        return self._cached(user_agent[:MAX_USER_AGENT_CHARS])

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()

    def _parse_uncached(self, user_agent: str) -> UserAgentInfo:
        result = self._parser(user_agent, Domain.ALL).complete()
        browser = os_name = device = None
        if result.user_agent is not None:
            browser = _join(result.user_agent.family, result.user_agent.major)
        if result.os is not None:
            version = result.os.major
            if version and result.os.minor:
                version = f"{version}.{result.os.minor}"
            os_name = _join(result.os.family, version)
        if result.device is not None and result.device.family != "Other":
            device = result.device.family
        return UserAgentInfo(browser=browser, os=os_name, device=device)


def _join(family: str, version: str | None) -> str | None:
    if not family or family == "Other":
        return None
    return f"{family} {version}" if version else family
