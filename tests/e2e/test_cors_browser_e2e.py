"""CORS in a real browser: a page on another origin calls Corral with the headers the official
OpenAI and Anthropic JavaScript SDKs send from a browser, and Chromium enforces the answers.

The page comes from a small server of the test's own on another loopback port (a page from
outside the loopback address space would need Chromium's local-network permission as well);
Corral lists its origin in ``cors_origins``. The SDKs are not loaded (nothing is installed from
npm at test time); the page sends what they send: their ``x-stainless-*`` family and their own
headers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import SupervisorFactory
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.supervisor_proc import Supervisor

pytestmark = pytest.mark.e2e

OPENAI_JS = {
    "Authorization": "Bearer unused",
    "Content-Type": "application/json",
    "Accept": "application/json",
    "X-Stainless-Lang": "js",
    "X-Stainless-Package-Version": "5.23.0",
    "X-Stainless-OS": "Unknown",
    "X-Stainless-Arch": "unknown",
    "X-Stainless-Runtime": "browser:chrome",
    "X-Stainless-Runtime-Version": "140.0.0",
    "X-Stainless-Retry-Count": "0",
    "X-Stainless-Timeout": "600",
}
ANTHROPIC_JS = {
    "x-api-key": "unused",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "prompt-caching-2024-07-31",
    "anthropic-dangerous-direct-browser-access": "true",
    "X-Stainless-Lang": "js",
    "X-Stainless-Helper-Method": "stream",
}
CALL = """async ([url, method, headers, body]) => {
  try {
    const response = await fetch(url, {method, headers, body});
    return {status: response.status, text: await response.text(),
            conversation: response.headers.get("X-Conversation-Id")};
  } catch (error) {
    return {error: String(error)};
  }
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.fail("chromium is not installed: run .ci/system-deps.sh (Debian package chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=path, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>app</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def app_origin() -> Iterator[str]:
    """The origin of the page that calls Corral: another port, so another origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def page(browser: Browser, app_origin: str) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{app_origin}/")
    yield page
    context.close()


@pytest.fixture
def sup(supervisor: SupervisorFactory, app_origin: str) -> Supervisor:
    return supervisor(f'cors_origins = ["{app_origin}"]\n')


def call(page: Page, url: str, method: str, headers: dict[str, str], body: str | None) -> Any:
    return page.evaluate(CALL, [url, method, headers, body])


def test_the_openai_sdk_headers_pass_and_a_stream_is_readable(page: Page, sup: Supervisor) -> None:
    body = '{"model": "fake", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
    headers = {**OPENAI_JS, "X-Conversation-Id": "browser-1/fake"}
    result = call(page, f"{sup.base_url}/v1/chat/completions", "POST", headers, body)
    assert "error" not in result, result
    assert result["status"] == 200
    assert result["text"].rstrip().endswith("data: [DONE]")
    assert result["conversation"] == "browser-1/fake"  # exposed to the page
    replay = call(page, f"{sup.base_url}/v1/stream?conv_id=browser-1/fake", "GET", OPENAI_JS, None)
    assert replay["status"] == 200
    assert replay["text"] == result["text"]


def test_the_anthropic_sdk_headers_pass(page: Page, sup: Supervisor) -> None:
    result = call(page, f"{sup.base_url}/v1/models", "GET", ANTHROPIC_JS, None)
    assert "error" not in result, result
    assert result["status"] == 200


def test_the_browser_blocks_a_header_corral_does_not_allow(page: Page, sup: Supervisor) -> None:
    result = call(page, f"{sup.base_url}/v1/models", "GET", {**OPENAI_JS, "X-Evil": "1"}, None)
    assert "Failed to fetch" in result.get("error", ""), result
