"""Download jobs and the small JSON file that remembers them across restarts.

A job that was queued or running when the supervisor stopped (or was killed) comes back as
``interrupted``; starting it again resumes from the bytes already in the cache. The file is
rewritten (atomically) on state changes only, not on every progress frame.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corral.supervisor.hub.cache import MODEL_ID_PREFIX, hub_model_id, is_model_file, shard_names
from corral.supervisor.hub.checkpoint_files import is_checkpoint_repo

log = logging.getLogger("corral.downloads")

JobState = Literal["queued", "running", "finished", "failed", "cancelled", "interrupted"]
ACTIVE: frozenset[str] = frozenset({"queued", "running"})
FILE_VERSION = 1


class Job(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    repo: str
    revision: str | None = None
    commit: str | None = None
    files: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    state: JobState = "queued"
    bytes_done: int = 0
    bytes_total: int = 0
    bytes_per_second: float = 0.0
    file_progress: dict[str, tuple[int, int]] = Field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None
    paths: tuple[str, ...] = ()
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def same_request(self, repo: str, revision: str | None, files: tuple[str, ...]) -> bool:
        return self.repo == repo and self.revision == revision and self.files == files

    def event(self) -> dict[str, Any]:
        """The job as the API and ``event: download`` show it."""
        return {
            "job": self.id,
            "repo": self.repo,
            "revision": self.revision,
            "commit": self.commit,
            "state": self.state,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "bytes_per_second": round(self.bytes_per_second, 1),
            "files": {name: list(pair) for name, pair in self.file_progress.items()},
            "error": self.error,
            "error_code": self.error_code,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class JobFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Job]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable %s: %s", self.path, exc)
            return []
        jobs: list[Job] = []
        for item in raw.get("jobs", []) if isinstance(raw, dict) else []:
            try:
                job = Job.model_validate(item)
            except ValidationError as exc:
                log.error("ignoring a bad job in %s: %s", self.path, exc)
                continue
            if job.active:  # the process that ran it is gone
                job.state = "interrupted"
                job.bytes_per_second = 0.0
            jobs.append(job)
        return jobs

    def save(self, jobs: Iterable[Job]) -> None:
        data = {"version": FILE_VERSION, "jobs": [job.model_dump(mode="json") for job in jobs]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, indent=1))
        os.replace(temporary, self.path)


@dataclass(frozen=True)
class Downloading:
    """A model that is not on disk yet because a job is fetching it."""

    model_id: str
    repo: str
    file: str
    job: str
    size: int
    progress: float | None


def downloading_models(jobs: Iterable[Job]) -> dict[str, Downloading]:
    """The GGUF models and safetensors checkpoints active jobs are fetching, with the fraction
    done (None while unknown)."""
    found: dict[str, Downloading] = {}
    for job in jobs:
        if not job.active:
            continue
        for name in job.files:
            if not is_model_file(name):
                continue
            parts = [job.file_progress.get(s) for s in shard_names(name)]
            done = sum(p[0] for p in parts if p is not None)
            total = sum(p[1] for p in parts if p is not None)
            progress = done / total if total and None not in parts else None
            model_id = hub_model_id(job.repo, name)
            found[model_id] = Downloading(model_id, job.repo, name, job.id, total, progress)
        if is_checkpoint_repo(job.files):  # a safetensors checkpoint: one model, every file
            parts = [job.file_progress.get(name) for name in job.files]
            done = sum(p[0] for p in parts if p is not None)
            total = sum(p[1] for p in parts if p is not None)
            progress = done / total if total and None not in parts else None
            model_id = f"{MODEL_ID_PREFIX}{job.repo}"
            found[model_id] = Downloading(model_id, job.repo, "", job.id, total, progress)
    return found
