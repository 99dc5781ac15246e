"""Which database a ``keys``/``users`` command writes to, and telling the person which.

The rule: a data directory named on the command line, in the config or in the environment
wins. Otherwise the command follows the running Corral (found through its run file), so a key
created as the README says protects the server ``make serve`` started. With no server running
it uses the default data directory; with several on different databases it refuses to guess.
Every path is said on stderr, because a key in the wrong database leaves a server open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from corral.supervisor.daemon.runfile import RunningServer, running_servers
from corral.supervisor.settings import Settings, load_settings

_EXPLICIT_ENV = ("CORRAL_DATA_DIR", "CORRAL_DATABASE_PATH", "STATE_DIRECTORY")


class AmbiguousServer(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    settings: Settings
    note: str  # one line for stderr: which database, and why that one


def _same(a: Path, b: str) -> bool:
    return a.resolve() == Path(b).resolve()


def resolve_target(
    config: Path | None, data_dir: Path | None, runtime: Path | None = None
) -> Target:
    servers = running_servers(runtime)
    explicit = data_dir is not None or config is not None
    explicit = explicit or any(os.environ.get(name) for name in _EXPLICIT_ENV)
    if explicit:
        settings = load_settings(config, data_dir=data_dir)
        database = settings.resolved_database_path
        others = [s for s in servers if not _same(database, s.database)]
        note = f"using the database {database}"
        if others and len(others) == len(servers):
            note += "; the running server at " + _describe(others[0]) + " does not use it"
        return Target(settings, note)
    databases = {str(Path(s.database).resolve()): s for s in servers}
    if len(databases) > 1:
        listed = "; ".join(_describe(s) for s in databases.values())
        raise AmbiguousServer(
            f"{len(databases)} Corral servers are running with different databases ({listed}): "
            "pass --data-dir (or --config) to say which one this command is for"
        )
    if databases:
        server = next(iter(databases.values()))
        settings = load_settings(
            None, data_dir=Path(server.data_dir), database_path=Path(server.database)
        )
        return Target(settings, f"using the database of the server running at {_describe(server)}")
    settings = load_settings(None)
    return Target(
        settings,
        f"no running Corral found; using the default database {settings.resolved_database_path} "
        "(a server started with another --data-dir will not see it)",
    )


def _describe(server: RunningServer) -> str:
    return f"{server.url} (pid {server.pid}): {server.database}"
