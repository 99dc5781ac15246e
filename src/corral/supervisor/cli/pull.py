"""``corral pull``: fetch a model from the hub into the running daemon's cache.

What can be pulled, as Ollama and llama-server (``-hf``) take it:

- ``org/repo:Q4_K_M``: the GGUF of that quantisation (any case);
- ``org/repo``: one default file (Q4_K_M, else the smallest 4-bit one), never every
  quantisation; the daemon refuses and lists the files when there is no sensible default;
- ``hf.co/org/repo:FILE``, the ids ``corral ls`` prints, and ``huggingface.co/...`` links;
- any id ``corral ls`` prints: a hub model or preset is (re)fetched, a local file is
  already here;
- ``org/repo FILE...`` or ``--include PATTERN``: exactly those files, as before.

It follows ``/admin/events`` with a progress bar; Ctrl-C cancels the job, and the same pull
later resumes it from the bytes already on disk.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from corral.supervisor.cli.client import Daemon

ENDED = ("finished", "failed", "cancelled", "interrupted")
DEFAULT_QUANT = "*"  # the daemon's "pick the default file" (hub/quant.py)
_HOSTS = re.compile(r"^(?:https?://)?(?:hf\.co|(?:www\.)?huggingface\.co)/", re.IGNORECASE)


@dataclass(frozen=True)
class Reference:
    repo: str
    quant: str | None  # a tag or file stem; None for explicit files


def parse_reference(text: str) -> Reference:
    """``[hf.co/]org/repo[:TAG]`` -> repo and tag (DEFAULT_QUANT when none is given)."""
    bare = _HOSTS.sub("", text.strip()).rstrip("/")
    repo, _, tag = bare.partition(":")
    return Reference(repo, tag or DEFAULT_QUANT)


def _known(daemon: Daemon, name: str) -> dict[str, Any] | None:
    models: list[dict[str, Any]] = daemon.call("GET", "/admin/models")["data"]
    return next((m for m in models if m["id"] == name), None)


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    pull = commands.add_parser("pull", parents=[common], help="download a model from the hub")
    pull.add_argument(
        "repo",
        help="org/repo[:TAG] (TAG: a quantisation like Q4_K_M; default Q4_K_M, else the "
        "smallest 4-bit file), or a model id as corral ls prints it",
    )
    pull.add_argument("files", nargs="*", help="exactly these files of the repo instead")
    pull.add_argument("--revision", help="branch, tag or commit (default main)")
    pull.add_argument("--include", action="append", help="a file pattern; may repeat")


def _body(daemon: Daemon, args: argparse.Namespace) -> dict[str, Any] | None:
    """The pull request, or None when the model needs no pull (a local file)."""
    if args.files or args.include:
        return {"repo": args.repo, "files": args.files, "include": args.include or []}
    known = _known(daemon, args.repo)
    if known is not None and known.get("repo") and known.get("file"):
        stem = str(known["file"]).removesuffix(".gguf")  # a split GGUF: all of its shards
        return {"repo": known["repo"], "quant": stem}
    if known is not None:
        print(f"{known['id']} is already here ({known.get('source')}); nothing to pull")
        return None
    ref = parse_reference(args.repo)
    return {"repo": ref.repo, "quant": ref.quant}


def run(daemon: Daemon, args: argparse.Namespace) -> int:
    body = _body(daemon, args)
    if body is None:
        return 0
    if args.revision:
        body["revision"] = args.revision
    stream = daemon.events()  # subscribed before the pull, so no event can be missed
    job = daemon.call("POST", "/admin/models/pull", body)
    job_id = job["job"]
    files = ", ".join(job.get("files") or {}) or "?"
    print(f"pulling {body['repo']}: {files} (job {job_id})", file=sys.stderr)
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
    print(f"pulled {body['repo']}: {', '.join(job.get('files') or {})}")
    return 0


def _job_events(
    stream: Iterator[tuple[str, Any]], job_id: str, first: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    yield first
    for name, data in stream:
        if name == "download" and data.get("job") == job_id:
            yield data
