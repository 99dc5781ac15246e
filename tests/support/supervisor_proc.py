"""Runs the real supervisor as a process for end-to-end tests.

It listens on port 0 and we read the port it got from its log, so tests never race for a
fixed or pre-picked port. Its log lines are kept for assertions; waiting is always on a
condition with a deadline, never a bare sleep.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_LISTENING = re.compile(r"listening on http://([^:]+):(\d+)")


def wait_until(
    predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class Supervisor:
    data_dir: Path
    models_dir: Path
    config: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)
    base_url: str = ""
    on_stop: list[Callable[[], object]] = field(default_factory=list)  # e.g. clients to close
    _reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> Supervisor:
        argv = [
            sys.executable, "-m", "corral.supervisor", "serve",
            "--port", "0",
            "--data-dir", str(self.data_dir),
            "--models-dir", str(self.models_dir),
            *(["--config", str(self.config)] if self.config else []),
            *self.extra_args,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(lambda: bool(self.base_url) or self.proc is None or self.proc.poll() is not None,
                   timeout, "the supervisor to listen")  # fmt: skip
        if not self.base_url:
            raise RuntimeError(
                "supervisor exited before listening:\n" + "\n".join(self.lines[-30:])
            )
        return self

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if not self.base_url and (match := _LISTENING.search(line)):
                self.base_url = f"http://{match.group(1)}:{match.group(2)}"

    def log_text(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in list(self.lines):
                if match := regex.search(line):
                    found.append(match)
                    return True
            return False

        wait_until(seen, timeout, f"log line /{pattern}/")
        return found[0]

    def http(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            tail = "\n".join(self.lines[-40:])
            raise AssertionError(
                f"supervisor did not stop in {timeout} s; its log:\n{tail}"
            ) from None
        self._close_pipe()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_pipe()

    def _close_pipe(self) -> None:
        for close in self.on_stop:
            close()
        self.on_stop.clear()
        if self._reader is not None:
            self._reader.join(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
