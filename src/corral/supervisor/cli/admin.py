"""``corral pull | ls | ps | rm``: talk to the running daemon's admin API.

``--url`` (env ``CORRAL_URL``, default http://127.0.0.1:8080) and ``--api-key`` (env
``CORRAL_API_KEY``, sent as a Bearer token; the admin API needs an admin key once keys exist).
``pull`` follows ``/admin/events`` with a progress bar; Ctrl-C cancels the job, and the same
``pull`` later resumes it from the bytes already on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

COMMANDS = ("pull", "ls", "ps", "rm")
ENDED = ("finished", "failed", "cancelled", "interrupted")


class CliError(Exception):
    pass


class Daemon:
    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def _open(self, method: str, path: str, body: Any = None, timeout: float | None = 60.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise CliError(_error_message(exc)) from None
        except urllib.error.URLError as exc:
            raise CliError(f"cannot reach the daemon at {self.url}: {exc.reason}") from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(method, path, body) as response:
            return json.loads(response.read())

    def events(self) -> Iterator[tuple[str, Any]]:
        """(event, data) from /admin/events; subscribed on return, not on first use."""
        return _read_events(self._open("GET", "/admin/events", timeout=None))


def _read_events(response: Any) -> Iterator[tuple[str, Any]]:
    with response:
        name, data = "message", ""
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif not line and data:
                yield name, json.loads(data)
                name, data = "message", ""


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code} {exc.reason}"


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
        total = m.get("slots_total") or 0
        slots = f"{m.get('slots_busy', 0)}/{total}" if total else "-"
        row = [m["id"], m["state"], memory, str(m["in_flight"]), str(m["queued"]), slots, until]
        rows.append(row)
    headers = ["MODEL", "STATE", "MEMORY", "IN FLIGHT", "QUEUED", "SLOTS", "UNLOADS IN"]
    print(_table(rows, headers))
    return 0


def _rm(daemon: Daemon, args: argparse.Namespace) -> int:
    result = daemon.call("POST", "/admin/models/delete", {"model": args.model, "force": args.force})
    print(f"deleted {result['deleted']} ({_size(result.get('freed_bytes'))} freed)")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("CORRAL_URL", "http://127.0.0.1:8080"),
        help="the daemon (env CORRAL_URL; default http://127.0.0.1:8080)",
    )
    common.add_argument(
        "--api-key",
        default=os.environ.get("CORRAL_API_KEY"),
        help="an admin key, sent as a Bearer token (env CORRAL_API_KEY)",
    )
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
