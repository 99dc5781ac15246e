"""``corral install-service``: the system user, the systemd unit and an example config.

Idempotent: every step looks before it acts, so a second run does nothing, and a run after an
upgrade rewrites the unit only when the shipped one changed. The config file is never
overwritten. ``dry_run`` returns the actions without doing them.

The templates are the package data in ``corral/deploy/systemd/`` (the repository's top-level
``systemd/`` links there): one copy of each file, never an embedded duplicate that could drift
from the tested one.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Callable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

UNIT_NAME = "corral.service"
CONFIG_NAME = "corral.toml"
EXAMPLE_NAME = "corral.toml.example"
GPU_DROPIN_NAME = "gpu.conf"
HOME_DIR = "/var/lib/corral"  # the unit's StateDirectory=corral
# Characters that would need quoting or escaping in a unit file's command line.
_UNSAFE_PATH = re.compile(r"[\s\"'\\$%;]")

Runner = Callable[..., "subprocess.CompletedProcess[Any]"]


class InstallError(Exception):
    """Something that stops the installation, with a message for the administrator."""


def templates_dir() -> Traversable:
    """Where ``corral.service``, ``corral.toml.example`` and ``gpu.conf`` are read from."""
    packaged = importlib.resources.files("corral.deploy").joinpath("systemd")
    if not packaged.joinpath(UNIT_NAME).is_file():
        raise InstallError(f"cannot find {UNIT_NAME} in the corral.deploy package data")
    return packaged


def render_unit(template: str, *, executable: Path, config: Path, user: str) -> str:
    """The shipped unit with ExecStart= running ``executable`` on ``config``, as ``user``."""
    for path in (executable, config):
        if not path.is_absolute() or _UNSAFE_PATH.search(str(path)):
            raise InstallError(f"{path}: need an absolute path without spaces, quotes, $ or %")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]*", user):
        raise InstallError(f"{user!r} is not a valid system user name")
    replacements = {
        "ExecStart": f"{executable} serve --config {config}",
        "User": user,
        "Group": user,
    }
    lines = template.splitlines(keepends=True)
    for key, value in replacements.items():
        found = [i for i, line in enumerate(lines) if line.startswith(f"{key}=")]
        if len(found) != 1:
            raise InstallError(f"the unit template has {len(found)} {key}= lines, expected 1")
        lines[found[0]] = f"{key}={value}\n"
    return "".join(lines)


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _write(path: Path, text: str, mode: int, gid: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.chmod(temporary, mode)
    if gid is not None:
        os.chown(temporary, -1, gid)
    os.replace(temporary, path)


def install_service(
    prefix_venv: Path,
    *,
    user: str = "corral",
    config_dir: Path = Path("/etc/corral"),
    unit_dir: Path = Path("/etc/systemd/system"),
    gpu: bool = False,
    dry_run: bool = False,
    runner: Runner = subprocess.run,
    templates: Traversable | None = None,
) -> list[str]:
    """Set up the service; the actions taken (or, with ``dry_run``, to take), [] if none."""
    source = templates if templates is not None else templates_dir()
    venv = Path(os.path.abspath(prefix_venv))
    executable = venv / "bin" / "corral"
    if not dry_run and not os.access(executable, os.X_OK):
        raise InstallError(f"{executable} is not an executable: is {venv} corral's venv?")
    config = Path(os.path.abspath(config_dir)) / CONFIG_NAME
    unit = Path(os.path.abspath(unit_dir)) / UNIT_NAME
    unit_text = render_unit(
        source.joinpath(UNIT_NAME).read_text(), executable=executable, config=config, user=user
    )
    actions: list[str] = []

    if not _user_exists(user):
        useradd = [
            "useradd", "--system", "--user-group", "--home-dir", HOME_DIR,
            "--shell", "/usr/sbin/nologin", user,
        ]  # fmt: skip
        actions.append(" ".join(useradd))
        if not dry_run:
            runner(useradd, check=True)
    # The service reads its config through the user's group (root:<group>, 0750 and 0640).
    gid: int | None = None
    if _user_exists(user):
        gid = pwd.getpwnam(user).pw_gid
    elif not dry_run:
        raise InstallError(f"user {user} does not exist after useradd")

    if not config.parent.is_dir():
        actions.append(f"mkdir -m 0750 {config.parent} (group {user})")
        if not dry_run:
            config.parent.mkdir(mode=0o750, parents=True)
            os.chmod(config.parent, 0o750)  # mkdir's mode is masked by the umask
            os.chown(config.parent, -1, gid if gid is not None else -1)
    if not config.exists():
        actions.append(f"write {config} from {EXAMPLE_NAME} (mode 0640, group {user})")
        if not dry_run:
            _write(config, source.joinpath(EXAMPLE_NAME).read_text(), 0o640, gid)

    units_changed = False
    if not unit.is_file() or unit.read_text() != unit_text:
        actions.append(f"write {unit} (ExecStart={executable} serve --config {config})")
        units_changed = True
        if not dry_run:
            unit.parent.mkdir(parents=True, exist_ok=True)
            _write(unit, unit_text, 0o644)
    if gpu:
        dropin = unit.parent / f"{UNIT_NAME}.d" / GPU_DROPIN_NAME
        dropin_text = source.joinpath(GPU_DROPIN_NAME).read_text()
        if not dropin.is_file() or dropin.read_text() != dropin_text:
            actions.append(f"write {dropin}")
            units_changed = True
            if not dry_run:
                dropin.parent.mkdir(parents=True, exist_ok=True)
                _write(dropin, dropin_text, 0o644)

    if units_changed:
        reload = ["systemctl", "daemon-reload"]
        actions.append(" ".join(reload))
        if not dry_run:
            runner(reload, check=True)
    return actions


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``install-service`` to the ``corral`` command line."""
    parser = subparsers.add_parser(
        "install-service",
        help="set up the systemd service (run as root)",
        description="Create the system user, install the systemd unit running this venv's "
        "corral, write an example config if there is none, and reload systemd. Safe to run "
        "again (after an upgrade, say): it changes only what differs and never the config.",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path(sys.prefix),
        help="the venv whose bin/corral the unit runs (default: this one, %(default)s)",
    )
    parser.add_argument("--user", default="corral", help="system user (default %(default)s)")
    parser.add_argument("--config-dir", type=Path, default=Path("/etc/corral"))
    parser.add_argument("--unit-dir", type=Path, default=Path("/etc/systemd/system"))
    parser.add_argument("--gpu", action="store_true", help="also install the GPU drop-in")
    parser.add_argument("--dry-run", action="store_true", help="only print what would be done")


def run(args: argparse.Namespace) -> int:
    """Run ``corral install-service``; the exit status."""
    try:
        actions = install_service(
            args.venv,
            user=args.user,
            config_dir=args.config_dir,
            unit_dir=args.unit_dir,
            gpu=args.gpu,
            dry_run=args.dry_run,
        )
    except (InstallError, OSError, subprocess.CalledProcessError) as exc:
        hint = " (run as root)" if isinstance(exc, PermissionError) else ""
        print(f"corral install-service: {exc}{hint}", file=sys.stderr)
        return 1
    prefix = "would " if args.dry_run else ""
    for action in actions:
        print(f"{prefix}{action}")
    if not actions:
        print("nothing to do: the service is installed and up to date")
    elif not args.dry_run:
        print("next: edit the config, then `systemctl enable --now corral`")
    return 0
