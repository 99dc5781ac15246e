"""Web UI items of issue 18 in headless Chromium: Esc and the settings panel, the sign-in hint,
the admin table at phone width. Same harness as test_webui_e2e (fixtures imported from it)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests import test_webui_e2e as base
from tests.conftest import SupervisorFactory
from tests.support.supervisor_proc import Supervisor, wait_until
from tests.test_webui_e2e import (
    STREAMING,
    UI,
    UI_ENV,
    UI_PRESETS,
    conversation_id,
    send,
    stream_state,
)

pytestmark = pytest.mark.e2e
browser = base.browser  # the harness's fixtures, shared rather than copied
ui = base.ui


def test_escape_closes_the_settings_panel_before_it_stops_an_answer(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    page = ui(sup).page()
    page.goto("/")
    send(page, "tell me more")
    cid = conversation_id(page)
    expect(page.locator(STREAMING).get_by_test_id("assistant-content")).to_contain_text("tok2")
    page.get_by_test_id("settings-button").click()
    panel = page.get_by_test_id("settings-panel")
    expect(panel).to_be_visible()
    page.get_by_test_id("setting-temperature").focus()
    page.keyboard.press("Escape")
    expect(panel).to_have_count(0)
    expect(page.locator(STREAMING)).to_have_count(1)  # the answer goes on
    page.get_by_test_id("message-input").press("Escape")  # now Esc stops it
    expect(page.locator(STREAMING)).to_have_count(0)
    with sup.http() as http:
        wait_until(lambda: stream_state(http, cid) == "cancelled", 30, "the generation to stop")


def _corral(*args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corral.supervisor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_keys_without_accounts_explain_the_sign_in(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    _corral("keys", "create", "robot", "--data-dir", str(data))
    sup = supervisor(UI_PRESETS, env=UI_ENV, data_dir=data)
    page = ui(sup).page()
    page.goto("/")
    expect(page.get_by_test_id("login-form")).to_be_visible()
    hint = page.get_by_test_id("login-no-accounts")
    expect(hint).to_contain_text("corral users add NAME")
    _corral(
        "users",
        "add",
        "ada",
        "--password-stdin",
        "--data-dir",
        str(data),
        stdin="a long passphrase\n",
    )
    page.reload()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    expect(hint).to_have_count(0)
