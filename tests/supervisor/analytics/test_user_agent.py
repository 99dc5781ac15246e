"""User-Agent parsing with ua-parser's bundled rules, and its LRU cache."""

from __future__ import annotations

import pytest

from corral.supervisor.analytics.user_agents import (
    MAX_USER_AGENT_CHARS,
    UserAgentInfo,
    UserAgentParser,
)

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
CHROME_PIXEL = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.43 Mobile Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(scope="module")
def parser() -> UserAgentParser:
    return UserAgentParser()


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (CHROME_WINDOWS, UserAgentInfo("Chrome 120", "Windows 10", None)),
        (SAFARI_IPHONE, UserAgentInfo("Mobile Safari 17", "iOS 17.1", "iPhone")),
        (CHROME_PIXEL, UserAgentInfo("Chrome Mobile 120", "Android 14", "Pixel 7")),
        (FIREFOX_LINUX, UserAgentInfo("Firefox 121", "Linux", None)),
        (GOOGLEBOT, UserAgentInfo("Googlebot 2", None, "Spider")),
        ("curl/8.4.0", UserAgentInfo("curl 8", None, None)),
        ("OpenAI/Python 1.40.0", UserAgentInfo(None, None, None)),
    ],
)
def test_parse(parser: UserAgentParser, user_agent: str, expected: UserAgentInfo) -> None:
    assert parser.parse(user_agent) == expected


def test_missing_header(parser: UserAgentParser) -> None:
    assert parser.parse(None) == UserAgentInfo(None, None, None)
    assert parser.parse("") == UserAgentInfo(None, None, None)


def test_results_are_cached_per_parser() -> None:
    parser = UserAgentParser(cache_size=2)
    first = parser.parse(FIREFOX_LINUX)
    assert parser.parse(FIREFOX_LINUX) is first
    assert parser.cache_info().hits == 1
    parser.parse(CHROME_WINDOWS)
    parser.parse("curl/8.4.0")
    assert parser.cache_info().currsize == 2  # bounded: least recently used went out
    assert UserAgentParser().cache_info().currsize == 0  # no state shared between parsers


def test_huge_header_is_cut_before_parsing() -> None:
    parser = UserAgentParser()
    padded = FIREFOX_LINUX + " " * (MAX_USER_AGENT_CHARS - len(FIREFOX_LINUX))
    huge = padded + "x" * 100_000
    assert parser.parse(huge).browser == "Firefox 121"
    # Only the first MAX_USER_AGENT_CHARS count, so both share one cache entry.
    assert parser.parse(padded + "y" * 100_000) is parser.parse(huge)
    assert parser.cache_info().currsize == 1
