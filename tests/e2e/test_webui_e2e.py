"""The web UI in headless Chromium against a real supervisor with real (fake-backend) children.

Every wait is Playwright's auto-waiting ``expect`` or a condition with a deadline; nothing
sleeps. Screenshots of the main screens land in ``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from corral.supervisor.analytics.writer import AnalyticsRow
from corral.supervisor.store import Store
from tests.conftest import SupervisorFactory
from tests.support.browser import ARTIFACTS, CHROMIUM_ARGS, chromium_path, ensure_webui_built
from tests.support.supervisor_proc import Supervisor, wait_until

pytestmark = pytest.mark.e2e

REPLY_TOKENS = 60
EXPECTED = " ".join(f"tok{i}" for i in range(REPLY_TOKENS))
# An answer takes about 5 s: long enough to reload, stop or look at it mid-way.
UI_PRESETS = f"""
[models.fake-ui]
backend = "fake"
args = ["--tokens-per-second", "12", "--reply-tokens", "{REPLY_TOKENS}"]

[models.fake-slowload]
backend = "fake"
args = ["--load-delay", "6"]
"""
UI_ENV = {"CORRAL_DEFAULT_MODEL": "fake-ui"}
ADMIN_KEY = "ui-admin-key-0123456789abcdef"

ASSISTANT = '[data-testid="assistant-message"]'
STREAMING = '[data-testid="assistant-message"][data-streaming="true"]'
DONE = '[data-testid="assistant-message"][data-streaming="false"]'
WAIT = 30_000  # ms, Playwright's unit


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.fail("chromium is not installed: run .ci/system-deps.sh (Debian package chromium)")
    ensure_webui_built()
    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=WAIT)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=path, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@dataclass
class UI:
    """Browser contexts on one supervisor; checks that no request leaves it and no page throws."""

    browser: Browser
    base_url: str
    contexts: list[BrowserContext] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def page(self, **options: Any) -> Page:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("color_scheme", "light")
        context = self.browser.new_context(base_url=self.base_url, **options)
        context.set_default_timeout(WAIT)
        self.contexts.append(context)
        context.on("request", self._check_host)
        page = context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        return page

    def _check_host(self, request: Any) -> None:
        url: str = request.url
        if not url.startswith((self.base_url + "/", "data:", "blob:", "about:")):
            self.foreign.append(url)

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        assert self.foreign == [], f"the UI asked another host: {self.foreign}"
        assert self.page_errors == [], f"uncaught errors in the page: {self.page_errors}"


@pytest.fixture
def ui(browser: Browser) -> Iterator[Callable[[Supervisor], UI]]:
    made: list[UI] = []

    def make(sup: Supervisor) -> UI:
        made.append(UI(browser, sup.base_url))
        return made[-1]

    yield make
    for item in made:
        item.close()


def shot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), scale="css")  # CSS pixels: 1280x800, a phone 390x844
    return path


def conversation_id(page: Page) -> str:
    page.wait_for_url(re.compile(r"#/c/[^/]+$"))
    return unquote(urlsplit(page.url).fragment.removeprefix("/c/"))


def send(page: Page, text: str) -> None:
    box = page.get_by_test_id("message-input")
    box.fill(text)
    box.press("Enter")


def stored(http: httpx.Client, cid: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = http.get(f"/api/conversations/{cid}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_stored(
    http: httpx.Client, cid: str, messages: int, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The server's copy once it holds ``messages`` messages (the UI saves in the background)."""
    found: dict[str, Any] = {}

    def ready() -> bool:
        response = http.get(f"/api/conversations/{cid}", headers=headers)
        if response.status_code != 200:
            return False
        found.update(response.json())
        return len(found["messages"]) == messages

    wait_until(ready, 30, f"conversation {cid} to hold {messages} messages")
    return found


def stream_state(http: httpx.Client, cid: str) -> str | None:
    data = http.post("/v1/streams/lookup", json={"conversation_ids": [cid]}).json()["data"]
    return str(data[0]["state"]) if data else None


def test_streamed_answer_survives_a_reload_and_follows_the_user(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    view = ui(sup)
    page = view.page()
    page.goto("/")
    expect(page.get_by_test_id("model-picker")).to_have_attribute("data-model-id", "fake-ui")
    send(page, "Count for me, please.")
    cid = conversation_id(page)
    expect(page.get_by_test_id("user-content")).to_have_text("Count for me, please.")

    # Mid-answer: some tokens are on screen, the last one is not.
    answer = page.locator(STREAMING).get_by_test_id("assistant-content")
    expect(answer).to_contain_text("tok3")
    assert f"tok{REPLY_TOKENS - 1}" not in answer.inner_text()
    with sup.http() as http:
        assert stream_state(http, cid) == "running"

    page.reload()
    # Re-attached to the running generation: it streams on after the reload...
    expect(page.locator(STREAMING)).to_be_visible()
    shot(page, "chat-streaming")
    expect(page.get_by_test_id("user-content")).to_have_text("Count for me, please.")
    # ...and completes with every token exactly once.
    expect(page.locator(DONE).get_by_test_id("assistant-content")).to_have_text(
        EXPECTED, timeout=60_000
    )
    expect(page.locator(ASSISTANT)).to_have_count(1)
    expect(page.get_by_test_id("message-stats")).to_contain_text("tok/s")
    assert page.locator(DONE).get_by_test_id("assistant-content").inner_text() == EXPECTED

    with sup.http() as http:
        saved = wait_stored(http, cid, 2)
        assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
        assert saved["messages"][1]["content"] == EXPECTED
        assert saved["model"] == "fake-ui"
        # The title is generated by the model after the first exchange.
        wait_until(lambda: bool(stored(http, cid)["title"]), 30, "a generated title")
    shot(page, "chat-light")

    # A fresh browser (no local storage): the conversation comes from the server.
    other = view.page()
    other.goto("/")
    item = other.get_by_test_id("conversation-item")
    expect(item).to_have_count(1)
    item.click()
    expect(other.get_by_test_id("user-content")).to_have_text("Count for me, please.")
    expect(other.get_by_test_id("assistant-content")).to_have_text(EXPECTED)

    dark = view.page(color_scheme="dark")
    dark.goto(f"/#/c/{cid}")
    expect(dark.get_by_test_id("assistant-content")).to_have_text(EXPECTED)
    assert dark.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    background = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert _luminance(background) < 0.3, background
    shot(dark, "chat-dark")


def _luminance(css_color: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_switch_model_and_stop_with_button_and_escape(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    page = ui(sup).page()
    page.goto("/")
    picker = page.get_by_test_id("model-picker")
    expect(picker).to_have_attribute("data-model-id", "fake-ui")

    picker.click()
    page.locator('[data-testid="model-option"][data-model-id="fake"]').click()
    expect(picker).to_have_attribute("data-model-id", "fake")
    send(page, "one")
    cid = conversation_id(page)
    expect(page.locator(DONE).get_by_test_id("assistant-content")).to_have_text(
        " ".join(f"tok{i}" for i in range(8))
    )

    # An endless model: only a stop ends it.
    picker.click()
    page.locator('[data-testid="model-option"][data-model-id="fake-slow"]').click()
    expect(picker).to_have_attribute("data-model-id", "fake-slow")
    with sup.http() as http:
        wait_until(lambda: stored(http, cid)["model"] == "fake-slow", 30, "the model change saved")

        send(page, "two")
        expect(page.locator(STREAMING).get_by_test_id("assistant-content")).to_contain_text("tok5")
        page.get_by_test_id("stop-button").click()
        expect(page.get_by_test_id("stop-button")).to_have_count(0)
        expect(page.locator(STREAMING)).to_have_count(0)
        wait_until(lambda: stream_state(http, cid) != "running", 30, "the generation to stop")
        saved = wait_stored(http, cid, 4)
        assert saved["messages"][3]["content"].startswith("tok0 tok1 tok2 tok3 tok4 tok5")

        send(page, "three")
        expect(page.locator(STREAMING).get_by_test_id("assistant-content")).to_contain_text("tok5")
        page.get_by_test_id("message-input").press("Escape")
        expect(page.locator(STREAMING)).to_have_count(0)
        wait_until(lambda: stream_state(http, cid) != "running", 30, "the generation to stop")
        saved = wait_stored(http, cid, 6)
        assert [m["content"] for m in saved["messages"][::2]] == ["one", "two", "three"]
        assert stream_state(http, cid) == "cancelled"
    expect(page.locator(ASSISTANT)).to_have_count(3)


def test_admin_models_and_dashboard(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    with sup.http() as http:
        listed = http.get("/admin/models")
        assert listed.status_code == 200, (
            f"the admin API is missing: GET /admin/models answered {listed.status_code} {listed.text[:200]}"
        )
        for _ in range(3):
            done = http.post(
                "/v1/chat/completions",
                json={"model": "fake", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert done.status_code == 200, done.text
        assert http.get("/v1/models").status_code == 200
        wait_until(
            lambda: http.get("/admin/analytics/summary").json()["totals"]["requests"] >= 4,
            30,
            "the analytics writer to store the requests",
        )

    page = ui(sup).page()
    page.goto("/#/admin/models")
    rows = page.get_by_test_id("admin-model-row")
    expect(rows.first).to_be_visible()
    for model in ("fake", "fake-ui", "fake-slowload", "tiny"):
        expect(
            page.locator(f'[data-testid="admin-model-row"][data-model-id="{model}"]')
        ).to_have_count(1)
    slow = page.locator('[data-testid="admin-model-row"][data-model-id="fake-slowload"]')
    slow.get_by_test_id("model-load").click()
    expect(slow).to_have_attribute("data-state", "loading")
    expect(slow.get_by_test_id("model-state")).to_contain_text("loading")
    shot(page, "admin-models")
    expect(slow).to_have_attribute("data-state", "loaded")
    fake = page.locator('[data-testid="admin-model-row"][data-model-id="fake"]')
    expect(fake).to_have_attribute("data-state", "loaded")  # served the requests above

    page.get_by_test_id("admin-tab-dashboard").click()
    expect(page.get_by_test_id("dashboard")).to_be_visible()
    expect(page.get_by_test_id("total-requests")).to_have_text(re.compile(r"^[1-9][\d,.\s]*$"))
    expect(page.get_by_test_id("events-table")).to_be_visible()
    expect(page.get_by_test_id("event-row").first).to_be_visible()
    expect(page.get_by_test_id("breakdown-model")).to_contain_text("fake")
    expect(page.get_by_test_id("requests-chart")).to_be_visible()
    shot(page, "dashboard")

    page.get_by_test_id("admin-tab-server").click()
    expect(page.get_by_test_id("server-info")).to_be_visible()
    expect(page.get_by_test_id("server-child-row").first).to_be_visible()
    shot(page, "admin-server")


def test_login_is_required_when_keys_are_on(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.supervisor",
            "users",
            "add",
            "ada",
            "--admin",
            "--password-stdin",
            "--data-dir",
            str(data),
        ],
        input="analytical engine\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    keys = f'[[api_keys]]\nname = "ops"\nkey = "{ADMIN_KEY}"\nadmin = true\n'
    sup = supervisor(keys + UI_PRESETS, env={"CORRAL_DEFAULT_MODEL": "fake"}, data_dir=data)
    page = ui(sup).page()
    page.goto("/")
    expect(page.get_by_test_id("login-form")).to_be_visible()
    expect(page.get_by_test_id("message-input")).to_have_count(0)
    shot(page, "login")

    page.get_by_test_id("login-username").fill("ada")
    page.get_by_test_id("login-password").fill("wrong password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_be_visible()

    page.get_by_test_id("login-password").fill("analytical engine")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("message-input")).to_be_visible()
    expect(page.get_by_test_id("user-name")).to_have_text("ada")
    send(page, "hello")
    cid = conversation_id(page)
    expect(page.locator(DONE).get_by_test_id("assistant-content")).to_have_text(
        " ".join(f"tok{i}" for i in range(8))
    )

    page.reload()  # the session token is kept
    expect(page.get_by_test_id("assistant-content")).to_have_text(
        " ".join(f"tok{i}" for i in range(8))
    )
    with sup.http() as http:
        assert http.get(f"/api/conversations/{cid}").status_code == 401
        # The conversation is ada's: an API key is another owner.
        assert (
            http.get(
                f"/api/conversations/{cid}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ).status_code
            == 404
        )
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()


SHOWCASE = [
    {"role": "user", "content": "How do I read a file line by line in Python, and how fast is it?"},
    {
        "role": "assistant",
        "reasoning": "The user wants an idiomatic example and a rough idea of cost.",
        "content": (
            "Iterate over the file object: it is **lazy** and buffered, so memory stays flat.\n\n"
            "```python\n"
            "from pathlib import Path\n\n"
            "def count_words(path: Path) -> int:\n"
            "    total = 0\n"
            '    with path.open(encoding="utf-8") as handle:\n'
            "        for line in handle:\n"
            "            total += len(line.split())\n"
            "    return total\n"
            "```\n\n"
            "| Approach | Memory | Typical speed |\n"
            "|---|---|---|\n"
            "| `for line in handle` | one line | ~1 GB/s |\n"
            "| `handle.read().splitlines()` | whole file | slightly faster |\n"
            "| `mmap` + `re.finditer` | paged | fastest for huge files |\n\n"
            "The cost is linear: reading $n$ bytes takes $O(n)$ time, roughly $t \\approx n / B$ "
            "for a disk bandwidth $B$."
        ),
        "stats": {
            "ttft_ms": 182,
            "tokens_per_second": 41.7,
            "prompt_tokens": 24,
            "completion_tokens": 176,
        },
    },
    {"role": "user", "content": "And in one line?"},
    {
        "role": "assistant",
        "content": '`sum(len(line.split()) for line in open(path, encoding="utf-8"))`: fine for a script.',
        "stats": {
            "ttft_ms": 95,
            "tokens_per_second": 43.2,
            "prompt_tokens": 214,
            "completion_tokens": 27,
        },
    },
]
SIDEBAR = [
    ("Plan a weekend in Lisbon", False),
    ("Explain the CAP theorem", False),
    ("SQL window functions", True),
    ("Regex for ISO dates", False),
]


def seed_analytics(database: Path, now: float, count: int = 900) -> None:
    """A day of plausible traffic, so the dashboard screenshot shows what it is for."""
    rng = random.Random(7)
    people = [
        ("alice", "DE", "203.0.113.7"),
        ("bob", "US", "198.51.100.20"),
        ("chloe", "FR", "192.0.2.44"),
        ("ci-bot", "NL", "203.0.113.90"),
        ("dai", "JP", "198.51.100.3"),
        ("ana", "BR", "192.0.2.8"),
    ]
    models = ["qwen2.5-coder-0.5b-instruct", "fake-ui", "tiny"]
    rows = []
    for _ in range(count):
        ago = rng.random() ** 1.15 * 86_000  # a little busier lately
        hour = ((now - ago) / 3600) % 24
        if 1 <= hour < 6 and rng.random() < 0.7:
            continue  # quiet nights
        who, country, ip = rng.choice(people)
        kind = rng.random()
        if kind < 0.55:
            model = rng.choices(models, weights=[6, 3, 1])[0]
            completion = rng.randint(20, 600)
            tps = rng.uniform(25, 55)
            row = AnalyticsRow(
                ts=now - ago,
                method="POST",
                path="/v1/chat/completions",
                status=200 if rng.random() > 0.02 else 503,
                latency_ms=completion / tps * 1000,
                principal=who,
                route_group="openai",
                action="chat.completions",
                client_ip=ip,
                country=country,
                browser="Chrome",
                os="Linux",
                device="desktop",
                model=model,
                prompt_tokens=rng.randint(10, 900),
                completion_tokens=completion,
                ttft_ms=rng.uniform(60, 420),
                tokens_per_second=tps,
            )
        elif kind < 0.8:
            row = AnalyticsRow(
                ts=now - ago,
                method="GET",
                path="/api/conversations",
                status=200,
                latency_ms=rng.uniform(1, 9),
                principal=who,
                route_group="ui",
                client_ip=ip,
                country=country,
                browser="Firefox",
                os="macOS",
            )
        elif kind < 0.93:
            row = AnalyticsRow(
                ts=now - ago,
                method="GET",
                path="/v1/models",
                status=200,
                latency_ms=rng.uniform(0.5, 3),
                principal=who,
                route_group="openai",
                action="models",
                client_ip=ip,
                country=country,
            )
        else:
            row = AnalyticsRow(
                ts=now - ago,
                method="GET",
                path="/admin/models",
                status=200 if rng.random() > 0.2 else 403,
                latency_ms=rng.uniform(1, 6),
                principal=who,
                route_group="admin",
                client_ip=ip,
                country=country,
            )
        rows.append(row.to_record())
    with Store(database) as store:
        store.db["analytics"].insert_all(rows)


def test_screenshots_of_the_main_screens(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI], tmp_path: Path
) -> None:
    """The README's screens: a populated chat (light, dark, phone), the models page, a dashboard.

    The conversations are stored through the API and the analytics rows are seeded, so the
    pictures show the screens in use; stored markdown must render (code, table, math, stats).
    """
    data = tmp_path / "data"
    seed_analytics(data / "corral.db", time.time())
    sup = supervisor(UI_PRESETS, env=UI_ENV, data_dir=data, presets=False)
    with sup.http() as http:
        for title, pinned in SIDEBAR:
            made = http.post("/api/conversations", json={"title": title, "model": "fake-ui"})
            assert made.status_code == 201, made.text
            short = [{"role": "user", "content": title}, {"role": "assistant", "content": "…"}]
            http.patch(
                f"/api/conversations/{made.json()['id']}",
                json={"messages": short, "pinned": pinned},
            )
        show = http.post(
            "/api/conversations",
            json={"id": "showcase", "title": "Read a file line by line", "model": "fake-ui"},
        )
        assert show.status_code == 201, show.text
        assert (
            http.patch("/api/conversations/showcase", json={"messages": SHOWCASE}).status_code
            == 200
        )

    view = ui(sup)
    for name, options in (
        ("chat-showcase-light", {"color_scheme": "light"}),
        ("chat-showcase-dark", {"color_scheme": "dark"}),
        (
            "chat-phone",
            {
                "viewport": {"width": 390, "height": 844},
                "is_mobile": True,
                "has_touch": True,
                "device_scale_factor": 2,
            },
        ),
    ):
        page = view.page(**options)
        page.goto("/#/c/showcase")
        expect(page.get_by_test_id("assistant-content")).to_have_count(2)
        first = page.get_by_test_id("assistant-content").first
        expect(first.locator("pre code")).to_contain_text("def count_words")
        expect(first.locator("table tr")).to_have_count(4)
        expect(first.locator(".katex").first).to_be_visible()  # math is rendered, lazily
        expect(first.locator(".hljs-keyword").first).to_be_visible()  # and code highlighted
        expect(page.get_by_test_id("reasoning")).to_be_visible()
        expect(page.get_by_test_id("message-stats").first).to_contain_text("41.7 tok/s")
        if name == "chat-phone":  # a narrow table scrolls; its headers never break mid-word
            lines = first.locator("table th").evaluate_all(
                "ths => ths.map(th => { const r = document.createRange();"
                " r.selectNodeContents(th); return r.getClientRects().length; })"
            )
            assert lines == [1] * len(lines), lines
        else:
            expect(page.get_by_test_id("conversation-item")).to_have_count(len(SIDEBAR) + 1)
            expect(page.get_by_test_id("conversation-title").first).to_have_text(
                "SQL window functions"
            )
        page.get_by_test_id("message-input").fill("Now show me the same in Rust")
        # From the question on: the first answer's code, table and math are in view.
        page.get_by_test_id("messages").evaluate("el => { el.scrollTop = 0; }")
        shot(page, name)

    page = view.page()
    page.goto("/#/admin/models")
    slow = page.locator('[data-testid="admin-model-row"][data-model-id="fake-slowload"]')
    slow.get_by_test_id("model-load").click()
    expect(slow.get_by_test_id("model-state")).to_have_text(re.compile(r"loading (50|75)%"))
    shot(page, "admin-models-showcase")
    page.get_by_test_id("admin-tab-dashboard").click()
    expect(page.get_by_test_id("total-requests")).to_have_text(re.compile(r"^[1-9]\d\d"))
    expect(page.get_by_test_id("breakdown-country")).to_contain_text("DE")
    expect(page.get_by_test_id("requests-chart").locator("canvas")).to_be_visible()
    shot(page, "dashboard-showcase")
