"""``/api/pull`` over Corral's hub downloads, and who may change the shelf.

Ollama pulls from its own library; Corral pulls GGUF files from Hugging Face, named as
Ollama names them there: ``hf.co/org/repo:Q4_K_M`` (or ``org/repo``, which picks Q4_K_M,
else the smallest 4-bit file; see ``hub/quant.py``). Progress is Ollama's: ``pulling
manifest`` once the files are planned, a line per file with ``total`` and ``completed``
bytes as they change, then ``success``. A client that leaves does not stop the download.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from corral.supervisor.appkeys import FACTS, PRINCIPAL
from corral.supervisor.auth.policy import is_loopback
from corral.supervisor.broadcast import Lagged
from corral.supervisor.errors import BadGateway, BadRequest, Forbidden
from corral.supervisor.hub.downloads import DownloadManager
from corral.supervisor.hub.jobs import Job
from corral.supervisor.hub.quant import DEFAULT

_HOSTS = re.compile(r"^(?:https?://)?(?:hf\.co|(?:www\.)?huggingface\.co)/", re.IGNORECASE)


def require_admin(request: web.Request) -> None:
    """Pulls and deletes change the shelf: the rules of ``/admin/*``."""
    principal = request.get(PRINCIPAL)
    if principal is None or not principal.admin:
        raise Forbidden("pulling and deleting models needs an admin key", code="admin_required")
    facts = request.get(FACTS)
    if principal.kind == "anonymous" and not is_loopback(facts.client_ip if facts else None):
        raise Forbidden(
            "pulling and deleting models is served only to loopback clients until keys are "
            "configured",
            code="loopback_only",
        )


def reference(name: str) -> tuple[str, str]:
    """``[hf.co/]org/repo[:TAG]`` -> the repo and the quantisation tag (or file stem)."""
    bare = _HOSTS.sub("", name.strip()).rstrip("/")
    repo, _, tag = bare.partition(":")
    if "/" not in repo:
        raise BadRequest(
            f"'{name[:100]}' names a model of Ollama's library, which Corral does not pull; "
            "name a Hugging Face GGUF repository: hf.co/org/repo[:QUANT]",
            param="model",
            code="invalid_name",
        )
    return repo, DEFAULT if tag in ("", "latest") else tag


async def follow(downloads: DownloadManager, job_id: str) -> AsyncGenerator[Job, None]:
    """The job now, then after each change, until it ends."""
    while True:
        with downloads.events.subscribe() as events:
            job = downloads.get(job_id)
            yield job
            try:
                while job.active:
                    changed = await events.get()
                    if changed.id == job_id:
                        job = changed
                        yield job
            except Lagged:
                continue  # missed some: start again from the job as it is now
        return


def outcome(job: Job) -> dict[str, Any]:
    if job.state == "finished":
        return {"status": "success"}
    raise BadGateway(f"the download {job.state}: {job.error or 'no reason given'}", code=job.state)


async def progress(downloads: DownloadManager, job_id: str) -> AsyncGenerator[dict[str, Any], None]:
    yield {"status": "pulling manifest"}
    shown: dict[str, tuple[int, int]] = {}
    last: Job | None = None
    async for job in follow(downloads, job_id):
        last = job
        for name, (done, total) in job.file_progress.items():
            if shown.get(name) != (done, total):
                shown[name] = (done, total)
                yield {
                    "status": f"pulling {name}",
                    "digest": name,
                    "total": total,
                    "completed": done,
                }
    assert last is not None
    if last.state == "finished":
        # The last progress frame may predate the end: a finished file is whole.
        for name in last.files:
            size = shown[name][1] if name in shown else None
            if size is None and len(last.files) == 1:
                size = last.bytes_total
            if size is not None and shown.get(name) != (size, size):
                yield {
                    "status": f"pulling {name}",
                    "digest": name,
                    "total": size,
                    "completed": size,
                }
    yield outcome(last)


async def finished(downloads: DownloadManager, job_id: str) -> dict[str, Any]:
    last: Job | None = None
    async for job in follow(downloads, job_id):
        last = job
    assert last is not None
    return outcome(last)
