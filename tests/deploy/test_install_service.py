"""``corral install-service`` into tmp directories, with useradd and systemctl recorded, not run."""

from __future__ import annotations

import argparse
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from corral.deploy import install as installer
from corral.deploy.install import InstallError, install_service, render_unit
from tests.deploy.test_deploy_files import EXAMPLE_CONFIG, EXEC_START, GPU_DROPIN, UNIT, verify

# A user that exists here (whoever runs the tests) and one that does not.
ME = pwd.getpwuid(os.getuid()).pw_name
MISSING = "corral-test-nobody"


class Recorder:
    """Stands in for subprocess.run: records the commands and runs none."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert kwargs == {"check": True}
        self.calls.append(list(args))
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A venv stand-in with an executable bin/corral (systemd-analyze checks ExecStart=)."""
    root = tmp_path / "opt" / "corral" / ".venv"
    (root / "bin").mkdir(parents=True)
    corral = root / "bin" / "corral"
    corral.write_text("#!/bin/sh\nexit 0\n")
    corral.chmod(0o755)
    return root


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"config_dir": tmp_path / "etc" / "corral", "unit_dir": tmp_path / "systemd"}


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file under ``root``: inode, mode, mtime and content."""
    return {
        str(p.relative_to(root)): (
            p.stat().st_ino,
            p.stat().st_mode,
            p.stat().st_mtime_ns,
            p.read_bytes(),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_dry_run_lists_every_action_and_does_nothing(
    tmp_path: Path, venv: Path, dirs: dict[str, Path]
) -> None:
    assert not installer._user_exists(MISSING)
    runner = Recorder()
    before = snapshot(tmp_path)
    actions = install_service(venv, user=MISSING, dry_run=True, runner=runner, **dirs)
    config_dir, unit_dir = dirs["config_dir"], dirs["unit_dir"]
    assert actions == [
        f"useradd --system --user-group --home-dir /var/lib/corral --shell /usr/sbin/nologin {MISSING}",
        f"mkdir -m 0750 {config_dir} (group {MISSING})",
        f"write {config_dir}/corral.toml from corral.toml.example (mode 0640, group {MISSING})",
        f"write {unit_dir}/corral.service (ExecStart={venv}/bin/corral serve --config {config_dir}/corral.toml)",
        "systemctl daemon-reload",
    ]
    assert runner.calls == []
    assert snapshot(tmp_path) == before
    assert not config_dir.exists()
    assert not unit_dir.exists()


def test_dry_run_skips_useradd_for_an_existing_user(venv: Path, dirs: dict[str, Path]) -> None:
    actions = install_service(venv, user=ME, dry_run=True, runner=Recorder(), **dirs)
    assert not [a for a in actions if a.startswith("useradd")]


def test_install_writes_unit_and_config(venv: Path, dirs: dict[str, Path]) -> None:
    runner = Recorder()
    actions = install_service(venv, user=ME, runner=runner, **dirs)
    assert runner.calls == [["systemctl", "daemon-reload"]]
    assert len(actions) == 4  # mkdir, config, unit, daemon-reload
    config_dir, unit = dirs["config_dir"], dirs["unit_dir"] / "corral.service"

    # The shipped unit with only ExecStart=, User= and Group= changed.
    exec_start = f"{venv}/bin/corral serve --config {config_dir}/corral.toml"
    expected = UNIT.read_text().replace(f"ExecStart={EXEC_START}\n", f"ExecStart={exec_start}\n")
    expected = expected.replace("User=corral\n", f"User={ME}\n").replace(
        "Group=corral\n", f"Group={ME}\n"
    )
    assert unit.read_text() == expected
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644

    config = config_dir / "corral.toml"
    assert config.read_text() == EXAMPLE_CONFIG.read_text()
    gid = pwd.getpwnam(ME).pw_gid
    assert (stat.S_IMODE(config.stat().st_mode), config.stat().st_gid) == (0o640, gid)
    assert (stat.S_IMODE(config_dir.stat().st_mode), config_dir.stat().st_gid) == (0o750, gid)
    assert [p.name for p in config_dir.iterdir()] == ["corral.toml"], "no temporary files left"


def test_second_run_changes_nothing(tmp_path: Path, venv: Path, dirs: dict[str, Path]) -> None:
    install_service(venv, user=ME, runner=Recorder(), **dirs)
    before = snapshot(tmp_path)
    runner = Recorder()
    assert install_service(venv, user=ME, runner=runner, **dirs) == []
    assert runner.calls == []
    assert snapshot(tmp_path) == before


def test_config_is_never_overwritten_but_the_unit_is_updated(
    venv: Path, dirs: dict[str, Path]
) -> None:
    install_service(venv, user=ME, runner=Recorder(), **dirs)
    config = dirs["config_dir"] / "corral.toml"
    unit = dirs["unit_dir"] / "corral.service"
    config.write_text("port = 9000\n")
    shipped = unit.read_text()
    unit.write_text(shipped.replace("TimeoutStopSec=60", "TimeoutStopSec=5"))  # an old unit

    runner = Recorder()
    actions = install_service(venv, user=ME, runner=runner, **dirs)
    assert actions == [
        f"write {unit} (ExecStart={venv}/bin/corral serve --config {config})",
        "systemctl daemon-reload",
    ]
    assert runner.calls == [["systemctl", "daemon-reload"]]
    assert unit.read_text() == shipped
    assert config.read_text() == "port = 9000\n"


def test_written_unit_verifies(venv: Path, dirs: dict[str, Path]) -> None:
    install_service(venv, user=ME, runner=Recorder(), **dirs)
    assert verify(dirs["unit_dir"] / "corral.service") == []


def test_gpu_dropin(venv: Path, dirs: dict[str, Path]) -> None:
    install_service(venv, user=ME, runner=Recorder(), **dirs)
    runner = Recorder()
    actions = install_service(venv, user=ME, gpu=True, runner=runner, **dirs)
    dropin = dirs["unit_dir"] / "corral.service.d" / "gpu.conf"
    assert actions == [f"write {dropin}", "systemctl daemon-reload"]
    assert runner.calls == [["systemctl", "daemon-reload"]]
    assert dropin.read_text() == GPU_DROPIN.read_text()
    assert verify(dirs["unit_dir"] / "corral.service") == []
    assert install_service(venv, user=ME, gpu=True, runner=runner, **dirs) == []


def test_refuses_a_venv_without_corral(tmp_path: Path, dirs: dict[str, Path]) -> None:
    with pytest.raises(InstallError, match="not an executable"):
        install_service(tmp_path / "nowhere", user=ME, runner=Recorder(), **dirs)
    assert not dirs["unit_dir"].exists()


@pytest.mark.parametrize("bad", ["/opt/my corral/.venv", "relative/.venv", "/opt/100%/.venv"])
def test_render_refuses_paths_a_unit_cannot_hold(bad: str) -> None:
    with pytest.raises(InstallError, match="absolute path"):
        render_unit(UNIT.read_text(), executable=Path(bad), config=Path("/etc/c.toml"), user="c")


def test_render_refuses_bad_user_names() -> None:
    with pytest.raises(InstallError, match="not a valid system user"):
        render_unit(UNIT.read_text(), executable=Path("/x"), config=Path("/y"), user="root\nX=1")


def test_templates_are_the_shipped_files() -> None:
    templates = installer.templates_dir()
    assert templates.joinpath("corral.service").read_text() == UNIT.read_text()
    assert templates.joinpath("corral.toml.example").read_text() == EXAMPLE_CONFIG.read_text()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corral")
    installer.add_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_command_line(
    venv: Path,
    dirs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = ["--venv", str(venv), "--user", ME, "--config-dir", str(dirs["config_dir"]),
             "--unit-dir", str(dirs["unit_dir"])]  # fmt: skip
    args = parse("install-service", *flags, "--dry-run")
    assert args.command == "install-service"
    assert installer.run(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "would systemctl daemon-reload"
    assert not dirs["unit_dir"].exists()

    # A real run; systemctl is recorded rather than run on this machine.
    runner = Recorder()
    real = installer.install_service
    monkeypatch.setattr(
        installer, "install_service", lambda *a, **kw: real(*a, **kw, runner=runner)
    )
    assert installer.run(parse("install-service", *flags)) == 0
    assert runner.calls == [["systemctl", "daemon-reload"]]
    assert (dirs["unit_dir"] / "corral.service").is_file()
    assert installer.run(parse("install-service", *flags)) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_command_line_reports_errors(
    tmp_path: Path, dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("install-service", "--venv", str(tmp_path / "nowhere"), "--user", ME,
                 "--config-dir", str(dirs["config_dir"]), "--unit-dir", str(dirs["unit_dir"]))  # fmt: skip
    assert installer.run(args) == 1
    assert "is not an executable" in capsys.readouterr().err


def test_default_venv_is_the_running_one() -> None:
    assert parse("install-service").venv == Path(sys.prefix)
