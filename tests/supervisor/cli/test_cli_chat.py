"""``corral run`` / ``corral chat`` against a real supervisor: one-shot, and through a pty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pexpect
import pytest

from tests.conftest import SupervisorFactory, client_for, have_llama
from tests.support.supervisor_proc import Supervisor, wait_until

PROMPT = ">>> "


def _env(sup: Supervisor) -> dict[str, str]:
    return {**os.environ, "CORRAL_URL": sup.base_url, "TERM": "dumb", "PYTHONUNBUFFERED": "1"}


def _corral(
    sup: Supervisor, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.supervisor", *args],
        capture_output=True,
        text=True,
        env=_env(sup),
        input=stdin,
        timeout=120,
        check=False,
    )


def _spawn(sup: Supervisor, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "corral.supervisor", *args],
        env=_env(sup),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    child.expect_exact(PROMPT)
    return child


def _in_flight(http: httpx.Client, model: str) -> int:
    items = {m["id"]: m for m in http.get("/admin/models").json()["data"]}
    return int(items[model]["in_flight"])


@pytest.mark.skipif(not have_llama(), reason="needs llama-cpp-python")
def test_run_with_a_prompt_answers_once(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    expected = client_for(sup).chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello there"}],
        max_tokens=12,
        seed=7,
        temperature=1.0,
    )
    text = expected.choices[0].message.content or ""
    assert text
    args = ("run", "tiny", "--max-tokens", "12", "--seed", "7", "--temperature", "1.0")
    done = _corral(sup, *args, "hello", "there")
    assert done.returncode == 0, done.stderr
    assert done.stdout == text + ("" if text.endswith("\n") else "\n")
    piped = _corral(sup, *args, stdin="hello there\n")  # the prompt from a pipe
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == done.stdout
    missing = _corral(sup, "run", "no-such-model", "hi")
    assert missing.returncode == 1
    assert "the model 'no-such-model' does not exist (corral ls lists the models)" in (
        missing.stderr
    )


def test_chat_in_a_terminal(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    # The fake model counts prompt tokens as words: the counts show what each request carried.
    chat = _spawn(sup, "chat", "fake", "--verbose")
    chat.sendline("one two three")
    chat.expect_exact("tok7")
    chat.expect_exact("[prompt 3 tokens, answer 8 tokens")
    chat.expect_exact(PROMPT)
    chat.sendline("four")  # the history goes along: 3 + 8 + 1
    chat.expect_exact("[prompt 12 tokens")
    chat.expect_exact(PROMPT)
    chat.sendline("/clear")
    chat.expect_exact("cleared the conversation")
    chat.expect_exact(PROMPT)
    chat.sendline("/system be brief please")
    chat.expect_exact(PROMPT)
    chat.sendline('"""a b')  # one message over three lines
    chat.sendline("c")
    chat.sendline('d"""')
    chat.expect_exact("[prompt 7 tokens")  # 3 of the system prompt, 4 of the message
    chat.expect_exact(PROMPT)

    chat.sendline("/model fake-slow")
    chat.expect_exact("using fake-slow")
    chat.expect_exact(PROMPT)
    chat.sendline("go on")
    chat.expect_exact("tok3 ")  # it is streaming (100,000 tokens at 40 a second)
    chat.sendintr()  # Ctrl-C stops the answer, not the program
    chat.expect_exact("[stopped]")
    chat.expect_exact(PROMPT)
    with sup.http() as http:
        wait_until(lambda: _in_flight(http, "fake-slow") == 0, 30, "the generation to stop")
    assert chat.isalive()
    chat.sendline("/model nope")
    chat.expect_exact("the model 'nope' does not exist")
    chat.expect_exact(PROMPT)
    chat.sendline("/model")
    chat.expect_exact("chatting with fake-slow")
    chat.expect_exact(PROMPT)
    chat.sendline("/bye")
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0


@pytest.mark.skipif(not have_llama(), reason="needs llama-cpp-python")
def test_chat_loads_the_model_as_needed(supervisor: SupervisorFactory, tmp_path: Path) -> None:
    sup = supervisor()
    chat = _spawn(sup, "run", "tiny", "--max-tokens", "8", "--verbose")
    chat.sendline("hello")
    # The random weights may sample end-of-generation before the cap: any count up to 8.
    chat.expect(r"answer [1-8] tokens")
    chat.expect_exact(PROMPT)
    with sup.http() as http:
        assert http.get("/v1/models/tiny").json()["state"] == "loaded"
    chat.sendeof()  # Ctrl-D quits
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0
