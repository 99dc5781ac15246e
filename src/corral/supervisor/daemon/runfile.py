"""A running server announces itself in a small file, so CLI commands find its data directory.

``corral keys create`` writes to a database; without this, a key created with the default data
directory would not protect a server started with another one, and the server would stay open.
Each server writes ``server-<pid>.json`` (its URL, data directory and database) into a per-user
runtime directory once it listens, and removes it when it stops. A file whose process is gone
(a ``kill -9``) is stale: readers skip it and remove it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


def runtime_dir() -> Path:
    # XDG_RUNTIME_DIR is per user and private; without it (cron, some sudo setups) a
    # per-uid folder in the temp directory does the same job.
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "corral"
    return Path(tempfile.gettempdir()) / f"corral-{os.getuid()}"


@dataclass(frozen=True)
class RunningServer:
    pid: int
    url: str
    data_dir: str
    database: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True


class RunFile:
    """The announcement of one server process (this one, when written)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or runtime_dir()
        self.path = self.directory / f"server-{os.getpid()}.json"

    def write(self, server: RunningServer) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(server)))
        temporary.replace(self.path)  # readers never see half a file

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def running_servers(directory: Path | None = None) -> list[RunningServer]:
    """Servers of this user that are running now, oldest pid first."""
    folder = directory or runtime_dir()
    found: list[RunningServer] = []
    for path in sorted(folder.glob("server-*.json")) if folder.is_dir() else []:
        try:
            server = RunningServer(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(server.pid):
            found.append(server)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return sorted(found, key=lambda s: s.pid)
