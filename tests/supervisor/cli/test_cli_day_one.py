"""The day-one traps: keys land in the running server's database, a busy port is one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from corral.supervisor.cli.datadir import AmbiguousServer, resolve_target
from corral.supervisor.daemon.runfile import RunFile, RunningServer, running_servers
from tests.conftest import SupervisorFactory
from tests.support.supervisor_proc import wait_until


def _env(tmp_path: Path) -> dict[str, str]:
    """A person's shell: own runtime dir and home, no data directory named anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.pop("STATE_DIRECTORY", None)
    env.pop("XDG_DATA_HOME", None)
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    env["HOME"] = str(tmp_path / "home")
    return env


def _corral(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.supervisor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_key_created_without_data_dir_protects_the_running_server(
    supervisor: SupervisorFactory, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    data = tmp_path / "served-data"  # not the default: like make serve's DATA_DIR
    sup = supervisor(env={"XDG_RUNTIME_DIR": env["XDG_RUNTIME_DIR"]}, data_dir=data)
    with sup.http() as http:
        assert http.get("/v1/models").status_code == 200  # open: no keys yet
        created = _corral(env, "keys", "create", "alice", "--admin")
        assert created.returncode == 0, created.stderr
        assert f"the server running at {sup.base_url}" in created.stderr
        assert str(data.resolve() / "corral.db") in created.stderr
        key = created.stdout.strip()
        wait_until(lambda: http.get("/v1/models").status_code == 401, 10, "auth to turn on")
        headers = {"Authorization": f"Bearer {key}"}
        assert http.get("/v1/models", headers=headers).status_code == 200
    assert not (tmp_path / "home" / ".local" / "share" / "corral").exists()
    sup.terminate()
    assert running_servers(Path(env["XDG_RUNTIME_DIR"]) / "corral") == []


def test_without_a_server_the_default_database_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path)
    created = _corral(env, "keys", "create", "bob")
    assert created.returncode == 0, created.stderr
    default_db = tmp_path / "home" / ".local" / "share" / "corral" / "corral.db"
    assert "no running Corral found" in created.stderr
    assert str(default_db) in created.stderr
    assert default_db.is_file()


def _announce(directory: Path, pid: int, data: Path) -> None:
    runfile = RunFile(directory)
    runfile.path = directory / f"server-{pid}.json"
    runfile.write(RunningServer(pid, f"http://127.0.0.1:{pid}", str(data), str(data / "c.db")))


def test_two_servers_on_different_databases_are_not_guessed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CORRAL_DATA_DIR", "CORRAL_DATABASE_PATH", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    runtime = tmp_path / "run"
    _announce(runtime, os.getpid(), tmp_path / "a")
    _announce(runtime, os.getppid(), tmp_path / "b")
    with pytest.raises(AmbiguousServer, match="pass --data-dir"):
        resolve_target(None, None, runtime)
    named = resolve_target(None, tmp_path / "a", runtime)
    assert named.settings.data_dir == tmp_path / "a"
    # A file left by a process that is gone (kill -9) is skipped and cleared away.
    script = [sys.executable, "-c", "import os; print(os.getpid())"]
    gone = subprocess.run(script, capture_output=True, text=True, check=True)
    _announce(runtime, int(gone.stdout), tmp_path / "c")
    assert {s.pid for s in running_servers(runtime)} == {os.getpid(), os.getppid()}
    assert not (runtime / f"server-{int(gone.stdout)}.json").exists()


def test_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _corral(
            _env(tmp_path), "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("corral:")]
    assert problems == [
        f"corral: port {port} on 127.0.0.1 is already in use (another Corral, or another "
        "program); pick another with --port N (make serve PORT=N, or CORRAL_PORT=N), "
        "or --port 0 for any free port"
    ]
    assert all(line.startswith(("corral:", "level=info")) for line in result.stderr.splitlines())
