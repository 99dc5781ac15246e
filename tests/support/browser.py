"""Headless Chromium for the web UI tests: Debian's browser, driven by Playwright's Python API.

Playwright never downloads a browser here: it launches the system's ``chromium`` by path. The
built UI is what the supervisor serves, so it is built first when it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEBUI = ROOT / "webui"
WEBUI_DIST = ROOT / "src" / "corral" / "supervisor" / "webui_dist"
ARTIFACTS = ROOT / "test-artifacts"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def ensure_webui_built(timeout: float = 600.0) -> Path:
    """Build ``webui/`` into ``src/corral/supervisor/webui_dist`` unless ``index.html`` is there already."""
    index = WEBUI_DIST / "index.html"
    if index.exists():
        return index
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"{index} is missing and npm is not installed to build it")
    if not (WEBUI / "node_modules").exists():
        _run([npm, "ci", "--no-audit", "--no-fund"], timeout)
    _run([npm, "run", "build"], timeout)
    if not index.exists():
        raise RuntimeError(f"`npm run build` did not write {index}")
    return index


def _run(argv: list[str], timeout: float) -> None:
    done = subprocess.run(argv, cwd=WEBUI, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed in {WEBUI}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
