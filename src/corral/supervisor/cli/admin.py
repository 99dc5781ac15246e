"""``corral pull | ls | ps | rm | stop``: talk to the running daemon's admin API.

``--url`` (env ``CORRAL_URL``, default http://127.0.0.1:8080) and ``--api-key`` (env
``CORRAL_API_KEY``, sent as a Bearer token; the admin API needs an admin key once keys exist).
``pull`` is cli/pull.py.
"""

from __future__ import annotations

import argparse
import sys
import time

from corral.supervisor.cli import pull as pull_cli
from corral.supervisor.cli.client import CliError, Daemon

COMMANDS = ("pull", "ls", "ps", "rm", "stop")
RUNNING = ("loading", "loaded", "unloading")


def _size(n: int | None) -> str:
    if not n:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(n)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _ls(daemon: Daemon) -> int:
    models = daemon.call("GET", "/admin/models")["data"]
    rows = [
        [m["id"], _size(m.get("size_bytes")), m["state"], m.get("source") or ""] for m in models
    ]
    print(_table(rows, ["MODEL", "SIZE", "STATE", "SOURCE"]))
    return 0


def _ps(daemon: Daemon) -> int:
    models = [m for m in daemon.call("GET", "/admin/models")["data"] if m["state"] in RUNNING]
    now = time.time()
    rows = []
    for m in models:
        deadline = m.get("keep_alive_deadline")
        until = "forever" if deadline is None else f"{max(0, deadline - now):.0f} s"
        memory = _size(m.get("memory_bytes"))
        total = m.get("slots_total") or 0
        slots = f"{m.get('slots_busy', 0)}/{total}" if total else "-"
        row = [m["id"], m["state"], memory, str(m["in_flight"]), str(m["queued"]), slots, until]
        rows.append(row)
    headers = ["MODEL", "STATE", "MEMORY", "IN FLIGHT", "QUEUED", "SLOTS", "UNLOADS IN"]
    print(_table(rows, headers))
    return 0


def _stop(daemon: Daemon, args: argparse.Namespace) -> int:
    before = {m["id"]: m for m in daemon.call("GET", "/admin/models")["data"]}.get(args.model)
    result = daemon.call("POST", "/admin/models/unload", {"model": args.model})
    if before is not None and before["state"] not in RUNNING:
        print(f"{result['id']} is not running")
    else:
        print(f"stopped {result['id']}")
    return 0


def _rm(daemon: Daemon, args: argparse.Namespace) -> int:
    result = daemon.call("POST", "/admin/models/delete", {"model": args.model, "force": args.force})
    print(f"deleted {result['deleted']} ({_size(result.get('freed_bytes'))} freed)")
    return 0


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    pull_cli.add_command(commands, common)
    commands.add_parser("ls", parents=[common], help="list the models")
    commands.add_parser("ps", parents=[common], help="list the running models")
    rm = commands.add_parser("rm", parents=[common], help="delete a model's files")
    rm.add_argument("model")
    rm.add_argument("--force", action="store_true", help="stop it first if it is loaded")
    stop = commands.add_parser("stop", parents=[common], help="unload a running model")
    stop.add_argument("model")


def run(args: argparse.Namespace) -> int:
    daemon = Daemon(args.url, args.api_key)
    try:
        if args.command == "pull":
            return pull_cli.run(daemon, args)
        if args.command == "stop":
            return _stop(daemon, args)
        if args.command == "ls":
            return _ls(daemon)
        if args.command == "ps":
            return _ps(daemon)
        if args.command == "rm":
            return _rm(daemon, args)
    except CliError as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 1
    return 2
