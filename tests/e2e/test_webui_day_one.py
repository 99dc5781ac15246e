"""Web UI items of issue 18 in headless Chromium: Esc and the settings panel, the sign-in hint,
the admin table at phone width. Same harness as test_webui_e2e (fixtures imported from it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import SupervisorFactory
from tests.e2e import test_webui_e2e as base
from tests.e2e.test_webui_e2e import (
    DONE,
    STREAMING,
    UI,
    UI_ENV,
    UI_PRESETS,
    conversation_id,
    send,
    stream_state,
    wait_stored,
)
from tests.support.browser import WEBUI
from tests.support.supervisor_proc import Supervisor, wait_until
from tests.support.tiny_pdf import tiny_pdf

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


def test_admin_models_fit_a_phone(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    page = ui(sup).page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto("/#/admin/models")
    row = page.locator('[data-testid="admin-model-row"][data-model-id="fake-slowload"]')
    expect(row).to_be_visible()
    # Nothing is wider than the screen: no sideways scrolling, in the page or in the table.
    widths = page.evaluate(
        """() => {
          const box = document.querySelector('[data-testid="admin-models"]').parentElement;
          return [document.documentElement.scrollWidth, window.innerWidth,
                  box.scrollWidth, box.clientWidth];
        }"""
    )
    assert widths[0] <= widths[1], widths
    assert widths[2] <= widths[3], widths
    row.scroll_into_view_if_needed()
    for part in (
        row.get_by_test_id("model-state"),
        row.get_by_test_id("model-load"),
        row.locator('td[data-label="Size"]'),
    ):
        box = part.bounding_box()
        assert box is not None
        assert box["x"] >= 0, box
        assert box["x"] + box["width"] <= 390, box  # within the screen's width
    base.shot(page, "admin-models-phone")


def test_search_finds_words_inside_answers(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    with sup.http() as http:
        answer = "Screens mix light, so use RGB: rgb(255, 128, 0) is orange."
        for cid, title, text in (
            ("c-colour", "Colour question", answer),
            ("c-other", "Weekend plans", "A walk by the river."),
        ):
            messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": text}]
            made = http.post(
                "/api/conversations", json={"id": cid, "title": title, "messages": messages}
            )
            assert made.status_code == 201, made.text
    page = ui(sup).page()
    page.goto("/")
    items = page.get_by_test_id("conversation-item")
    expect(items).to_have_count(2)
    page.get_by_test_id("conversation-search").fill("RGB")  # only in an answer, not a title
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-conversation-id", "c-colour")
    expect(items.first.get_by_test_id("conversation-snippet")).to_contain_text("rgb(255, 128, 0)")
    page.get_by_test_id("conversation-search").fill("weekend")  # titles still match at once
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-conversation-id", "c-other")
    page.get_by_test_id("conversation-search").fill("")
    expect(items).to_have_count(2)


def test_a_tab_closed_mid_answer_leaves_a_named_entry(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    session = ui(sup)
    page = session.page()
    page.goto("/")
    send(page, "How do horses sleep standing up?")
    cid = conversation_id(page)
    expect(page.locator(STREAMING)).to_have_count(1)
    with sup.http() as http:
        wait_until(lambda: stream_state(http, cid) == "running", 30, "the answer to start")
        page.context.close()  # the tab goes before the answer (and its title) is in
        (entry,) = http.get("/api/conversations").json()["data"]
        assert entry["id"] == cid
        assert entry["title"] == "How do horses sleep standing up?"
    # Back in a new tab: the entry carries that name, and the next new chat is a new entry.
    again = session.page()
    again.goto("/")
    item = again.locator(f'[data-testid="conversation-item"][data-conversation-id="{cid}"]')
    # (the model's title may replace it once the re-attached answer ends)
    expect(item.get_by_test_id("conversation-title")).not_to_have_text("New chat")
    expect(again.get_by_test_id("conversation-item")).to_have_count(1)


def test_export_then_import_round_trip(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI], tmp_path: Path
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    seeded = {
        "Colour question": ["What is RGB?", "Red, green and **blue** light."],
        "Weekend plans": ["Where to walk?", "By the river."],
    }
    with sup.http() as http:
        for title, (question, answer) in seeded.items():
            messages = [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
            made = http.post("/api/conversations", json={"title": title, "messages": messages})
            assert made.status_code == 201, made.text
    page = ui(sup).page(accept_downloads=True)
    page.goto("/")
    items = page.get_by_test_id("conversation-item")
    expect(items).to_have_count(2)

    colour = page.locator('[data-testid="conversation-item"]', has_text="Colour question")
    colour.hover()
    colour.get_by_test_id("conversation-menu").click()
    with page.expect_download() as markdown:
        page.get_by_test_id("conversation-export-md").click()
    text = Path(markdown.value.path()).read_text()
    assert text.startswith("# Colour question\n")
    assert "## User\n\nWhat is RGB?\n\n## Assistant\n\nRed, green and **blue** light." in text
    assert markdown.value.suggested_filename.startswith("Colour-question-")

    with page.expect_download() as everything:
        page.get_by_test_id("export-all-json").click()
    exported = tmp_path / everything.value.suggested_filename
    everything.value.save_as(exported)
    with sup.http() as http:
        for conv in http.get("/api/conversations").json()["data"]:
            assert http.delete(f"/api/conversations/{conv['id']}").status_code == 204
    page.reload()
    expect(items).to_have_count(0)
    page.get_by_test_id("import-file").set_input_files(str(exported))
    expect(page.get_by_test_id("notice")).to_contain_text("Imported 2 conversations")
    expect(items).to_have_count(2)
    with sup.http() as http:
        back = {}
        for conv in http.get("/api/conversations").json()["data"]:
            full = http.get(f"/api/conversations/{conv['id']}").json()
            back[full["title"]] = [m["content"] for m in full["messages"]]
    assert back == seeded
    # A ChatGPT-style export maps in too: the branch last shown, text turns only.
    node = {
        "root": {"id": "root", "parent": None, "children": ["u"], "message": None},
        "u": {"id": "u", "parent": "root", "children": ["a"], "message": {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["Do horses sleep standing?"]}}},
        "a": {"id": "a", "parent": "u", "children": [], "message": {"author": {"role": "assistant"}, "content": {"content_type": "text", "parts": ["Mostly, yes."]}}},
    }  # fmt: skip
    chatgpt = tmp_path / "conversations.json"
    chatgpt.write_text(json.dumps([{"title": "Horses", "current_node": "a", "mapping": node}]))
    page.get_by_test_id("import-file").set_input_files(str(chatgpt))
    expect(page.get_by_test_id("notice")).to_contain_text("Imported 1 conversation from")
    expect(page.locator('[data-testid="conversation-item"]', has_text="Horses")).to_have_count(1)


def test_a_stopped_or_capped_answer_offers_continue(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    page = ui(sup).page()
    page.goto("/")
    send(page, "count slowly")
    cid = conversation_id(page)
    expect(page.locator(STREAMING).get_by_test_id("assistant-content")).to_contain_text("tok4")
    page.get_by_test_id("stop-button").click()
    answer = page.get_by_test_id("assistant-message")
    expect(answer.get_by_test_id("message-finish")).to_have_attribute("data-finish", "stopped")
    expect(answer.get_by_test_id("message-finish")).to_contain_text("You stopped this answer.")
    answer.get_by_test_id("message-continue").click()
    # The same message goes on to the model's end: one answer, every token once, in order.
    expect(page.locator(DONE).get_by_test_id("assistant-content")).to_have_text(
        " ".join(f"tok{i}" for i in range(60))
    )
    expect(answer).to_have_count(1)
    expect(answer.get_by_test_id("message-finish")).to_have_count(0)
    with sup.http() as http:
        saved = wait_stored(http, cid, 2)
        assert saved["messages"][1]["content"] == " ".join(f"tok{i}" for i in range(60))
        assert "finish" not in saved["messages"][1]

        # An answer cut at the token limit says so, and goes on the same way.
        messages = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "tok0 tok1 tok2", "finish": "length"},
        ]
        body = {"id": "c-capped", "model": "fake", "title": "Capped", "messages": messages}
        assert http.post("/api/conversations", json=body).status_code == 201
    page.goto("/#/c/c-capped")
    expect(answer.get_by_test_id("message-finish")).to_contain_text("token limit")
    answer.get_by_test_id("message-continue").click()
    expect(page.locator(DONE).get_by_test_id("assistant-content")).to_have_text(
        " ".join(f"tok{i}" for i in range(8))
    )
    expect(answer.get_by_test_id("message-finish")).to_have_count(0)


def test_keyboard_shortcuts(supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    page = ui(sup).page()
    page.goto("/")
    send(page, "hello")
    conversation_id(page)
    expect(page.locator(DONE)).to_have_count(1)
    page.locator("body").click(position={"x": 640, "y": 20})  # out of the text box
    page.keyboard.press("?")
    dialog = page.get_by_test_id("shortcuts-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Ctrl + K")
    expect(page.get_by_test_id("shortcuts-close")).to_be_focused()  # focus moves into it
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    page.keyboard.press("Control+k")
    expect(page.get_by_test_id("conversation-search")).to_be_focused()
    page.keyboard.press("Control+.")
    expect(page.get_by_test_id("settings-panel")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("settings-panel")).to_have_count(0)
    page.keyboard.press("Control+Shift+O")
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    expect(page.get_by_test_id("message-input")).to_be_focused()


def test_attachments_go_into_the_prompt(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI], tmp_path: Path
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    code = tmp_path / "add.py"
    code.write_text("def add(a, b):\n    return a + b\n")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(tiny_pdf(["RGB sales rose."]))
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    page = ui(sup).page()
    page.goto("/")
    page.get_by_test_id("attach-file").set_input_files([str(code), str(pdf), str(image)])
    chips = page.get_by_test_id("attachment-chip")
    expect(chips).to_have_count(2)
    expect(chips.nth(0)).to_contain_text("add.py")
    expect(chips.nth(1)).to_contain_text("report.pdf")
    expect(page.get_by_test_id("attachment-error")).to_contain_text("images need a vision model")
    send(page, "What do these say?")
    cid = conversation_id(page)
    expect(chips).to_have_count(0)
    with sup.http() as http:
        saved = wait_stored(http, cid, 2)
    question = saved["messages"][0]["content"]
    assert question.startswith("File `add.py`:\n```py\ndef add(a, b):\n    return a + b\n```")
    assert "File `report.pdf`:\n```pdf\nRGB sales rose." in question
    assert question.endswith("\n\nWhat do these say?")


def test_regenerate_and_edit_keep_versions(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    eight = " ".join(f"tok{i}" for i in range(8))
    with sup.http() as http:
        messages = [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "the old answer"},
        ]
        body = {"id": "c-branch", "model": "fake", "title": "Branches", "messages": messages}
        assert http.post("/api/conversations", json=body).status_code == 201
    page = ui(sup).page()
    page.goto("/#/c/c-branch")
    answer = page.get_by_test_id("assistant-message")
    expect(answer.get_by_test_id("assistant-content")).to_have_text("the old answer")
    answer.hover()
    answer.get_by_test_id("message-regenerate").click()
    expect(page.locator(DONE).get_by_test_id("assistant-content")).to_have_text(eight)
    label = page.get_by_test_id("version-label")
    expect(label).to_have_text("2/2")
    page.get_by_test_id("version-prev").click()
    expect(answer.get_by_test_id("assistant-content")).to_have_text("the old answer")
    expect(label).to_have_text("1/2")

    # Edit the question: the old question and its answers stay a version of their own.
    question = page.get_by_test_id("user-message")
    question.hover()
    question.get_by_test_id("message-edit").click()
    page.get_by_test_id("edit-input").fill("second question")
    page.get_by_test_id("edit-send").click()
    expect(page.locator(DONE).get_by_test_id("assistant-content")).to_have_text(eight)
    expect(question.get_by_test_id("user-content")).to_have_text("second question")
    expect(label).to_have_text("2/2")  # the question's versions; the new answer has one
    with sup.http() as http:
        saved = wait_stored(http, "c-branch", 2)
        assert saved["messages"][0]["content"] == "second question"
        old = saved["messages"][0]["alts"][0]
        assert [m["content"] for m in old[:2]] == ["first question", "the old answer"]
        assert [m["content"] for m in old[1]["alts"][0]] == [eight]  # the regenerated one
    page.get_by_test_id("version-prev").click()
    expect(question.get_by_test_id("user-content")).to_have_text("first question")
    expect(answer.get_by_test_id("assistant-content")).to_have_text("the old answer")
    page.reload()  # stored on the server with the conversation
    expect(page.get_by_test_id("user-content")).to_have_text("first question")
    expect(page.get_by_test_id("version-label")).to_have_count(2)  # question 1/2, answer 1/2


AXE = WEBUI / "node_modules" / "axe-core" / "axe.min.js"


def _serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run(document, { resultTypes: ['violations'] })).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')})`)"""
    )
    return list(found)


def test_no_serious_accessibility_violations(
    supervisor: SupervisorFactory, ui: Callable[[Supervisor], UI]
) -> None:
    """axe-core (the npm package, injected through Playwright) on the main screens."""
    sup = supervisor(UI_PRESETS, env=UI_ENV)
    page = ui(sup).page()
    page.goto("/")
    send(page, "hello")
    expect(page.locator(DONE)).to_have_count(1, timeout=60_000)
    problems = {"chat": _serious_violations(page)}
    page.get_by_test_id("settings-button").click()
    expect(page.get_by_test_id("settings-panel")).to_be_visible()
    problems["settings"] = _serious_violations(page)
    page.goto("/#/admin/models")
    expect(page.get_by_test_id("admin-model-row").first).to_be_visible()
    problems["admin"] = _serious_violations(page)
    assert problems == {"chat": [], "settings": [], "admin": []}
