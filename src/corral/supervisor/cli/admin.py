"""``corral pull | ls | ps | rm``: talk to the running daemon's admin API.

``--url`` (env ``CORRAL_URL``, default http://127.0.0.1:8080) and ``--api-key`` (env
``CORRAL_API_KEY``, sent as a Bearer token; the admin API needs an admin key once keys exist).
``pull`` follows ``/admin/events`` with a progress bar; Ctrl-C cancels the job, and the same
``pull`` later resumes it from the bytes already on disk.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from corral.supervisor.cli.client import CliError, Daemon

COMMANDS = ("pull", "ls", "ps", "rm")
ENDED = ("finished", "failed", "cancelled", "interrupted")


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


def _pull(daemon: Daemon, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"repo": args.repo, "files": args.files, "include": args.include or []}
    if args.revision:
        body["revision"] = args.revision
    stream = daemon.events()  # subscribed before the pull, so no event can be missed
    job = daemon.call("POST", "/admin/models/pull", body)
    job_id = job["job"]
    print(f"pulling {args.repo} (job {job_id})", file=sys.stderr)
    bar = tqdm(total=job.get("bytes_total") or None, unit="B", unit_scale=True, file=sys.stderr)
    try:
        for data in _job_events(stream, job_id, job):
            bar.total = data.get("bytes_total") or bar.total
            bar.n = data.get("bytes_done", 0)
            bar.refresh()
            if data["state"] in ENDED:
                job = data
                break
    except KeyboardInterrupt:
        bar.close()
        daemon.call("POST", "/admin/models/cancel", {"job": job_id})
        print("cancelled; run the same pull again to resume", file=sys.stderr)
        return 130
    bar.close()
    if job["state"] != "finished":
        print(f"corral: {job['state']}: {job.get('error') or ''}", file=sys.stderr)
        return 1
    print(f"pulled {args.repo}")
    return 0


def _job_events(
    stream: Iterator[tuple[str, Any]], job_id: str, first: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    yield first
    for name, data in stream:
        if name == "download" and data.get("job") == job_id:
            yield data


def _ls(daemon: Daemon) -> int:
    models = daemon.call("GET", "/admin/models")["data"]
    rows = [
        [m["id"], _size(m.get("size_bytes")), m["state"], m.get("source") or ""] for m in models
    ]
    print(_table(rows, ["MODEL", "SIZE", "STATE", "SOURCE"]))
    return 0


def _ps(daemon: Daemon) -> int:
    running = ("loading", "loaded", "unloading")
    models = [m for m in daemon.call("GET", "/admin/models")["data"] if m["state"] in running]
    now = time.time()
    rows = []
    for m in models:
        deadline = m.get("keep_alive_deadline")
        until = "forever" if deadline is None else f"{max(0, deadline - now):.0f} s"
        memory = _size(m.get("memory_bytes"))
        rows.append([m["id"], m["state"], memory, str(m["in_flight"]), str(m["queued"]), until])
    print(_table(rows, ["MODEL", "STATE", "MEMORY", "IN FLIGHT", "QUEUED", "UNLOADS IN"]))
    return 0


def _rm(daemon: Daemon, args: argparse.Namespace) -> int:
    result = daemon.call("POST", "/admin/models/delete", {"model": args.model, "force": args.force})
    print(f"deleted {result['deleted']} ({_size(result.get('freed_bytes'))} freed)")
    return 0


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    pull = commands.add_parser("pull", parents=[common], help="download a model from the hub")
    pull.add_argument("repo", help="org/name on the hub (HF_ENDPOINT on the daemon)")
    pull.add_argument("files", nargs="*", help="files to fetch (default: the whole repo)")
    pull.add_argument("--revision", help="branch, tag or commit (default main)")
    pull.add_argument("--include", action="append", help="a file pattern; may repeat")
    commands.add_parser("ls", parents=[common], help="list the models")
    commands.add_parser("ps", parents=[common], help="list the running models")
    rm = commands.add_parser("rm", parents=[common], help="delete a model's files")
    rm.add_argument("model")
    rm.add_argument("--force", action="store_true", help="stop it first if it is loaded")


def run(args: argparse.Namespace) -> int:
    daemon = Daemon(args.url, args.api_key)
    try:
        if args.command == "pull":
            return _pull(daemon, args)
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
