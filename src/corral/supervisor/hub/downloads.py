"""Hub downloads: a registry of jobs, each run by its own ``python -m corral.child download``.

``pull`` plans the job against the hub API (supervisor/hub_plan.py), refuses it when the disk
would not keep its reserve, and queues it; up to ``hub.max_concurrent_downloads`` run at once.
Every state change and progress frame goes out on ``events``; state changes are also written
to ``DATA_DIR/downloads.json``, so a restart lists interrupted jobs, and ``resume`` (or the
same pull again) continues them from the bytes already on disk.

Everything here runs on the event loop; the only awaits between a check and the action it
gates are none: planning (the slow part) happens first, then the checks and the registration
run as one synchronous step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import time
from collections.abc import Callable, Iterator

from corral.protocol.hub_names import (
    HubNameError,
    check_file_name,
    check_pattern,
    check_repo_id,
    check_revision,
)
from corral.protocol.messages import (
    Cancel,
    DownloadFailed,
    DownloadFinished,
    DownloadProgress,
    DownloadStart,
    FromChild,
)
from corral.supervisor.broadcast import Broadcast
from corral.supervisor.child_process import ChildCommand, ChildExit, ChildFailed, ChildProcess
from corral.supervisor.errors import BadRequest, Conflict, NotFound
from corral.supervisor.hub.cache import HubCache, hub_cache_dir
from corral.supervisor.hub.jobs import (
    Downloading,
    Job,
    JobFile,
    JobState,
    downloading_models,
)
from corral.supervisor.hub.plan import Plan, check_disk, plan_pull
from corral.supervisor.settings import Settings

log = logging.getLogger("corral.downloads")

Planner = Callable[[str, str | None, tuple[str, ...], tuple[str, ...]], Plan]


def _unique(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


class DownloadManager:
    def __init__(self, settings: Settings, planner: Planner | None = None) -> None:
        self._settings = settings
        self._planner = planner or self._plan_with_hub
        self.cache_dir = hub_cache_dir(settings.data_dir)
        self.hub = HubCache(self.cache_dir)
        self._file = JobFile(settings.data_dir / "downloads.json")
        self._jobs: dict[str, Job] = {job.id: job for job in self._file.load()}
        self._children: dict[str, ChildProcess] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()
        self._deleting: set[str] = set()  # repos whose files are being deleted
        self._closing = False
        self.events: Broadcast[Job] = Broadcast()

    def apply(self, settings: Settings) -> None:
        """New limits and token (SIGHUP); the cache stays where it was at start."""
        self._settings = settings.model_copy(update={"data_dir": self._settings.data_dir})
        self._schedule()

    # --- queries ----------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.created_at)

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no download job {job_id!r}", param="job", code="job_not_found")
        return job

    def busy(self, repo: str) -> bool:
        return any(job.active and job.repo == repo for job in self._jobs.values())

    @contextlib.contextmanager
    def deleting(self, repo: str) -> Iterator[None]:
        """Hold off pulls of ``repo`` while its files are deleted. Checked and taken in one
        step, so a pull cannot be admitted into the folder between the check and the delete."""
        if self.busy(repo) or repo in self._deleting:
            raise Conflict(
                f"a download of {repo} is running; cancel it first",
                param="model",
                code="download_in_progress",
            )
        self._deleting.add(repo)
        try:
            yield
        finally:
            self._deleting.discard(repo)

    def downloading(self) -> dict[str, Downloading]:
        """Models that active jobs are fetching, with the fraction done (None while unknown)."""
        return downloading_models(self._jobs.values())

    # --- commands -------------------------------------------------------------------------

    async def pull(
        self,
        repo: str,
        revision: str | None = None,
        files: tuple[str, ...] = (),
        include: tuple[str, ...] = (),
        quant: str | None = None,
    ) -> Job:
        """Plan, check and queue a download; the same request while it runs is the same job.
        ``quant`` (a tag, a file stem, or hub.quant.DEFAULT) picks one model's files."""
        if quant is not None and (files or include):
            raise BadRequest("give quant, or files and include; not both", param="quant")
        try:
            check_repo_id(repo)
            if revision is not None:
                check_revision(revision)
            files = _unique([check_file_name(name) for name in files])
            include = _unique([check_pattern(pattern) for pattern in include])
        except HubNameError as exc:
            raise BadRequest(str(exc), param=exc.field, code="invalid_name") from None
        if quant is not None:  # which files is the hub's listing to say; _admit dedups
            plan = await asyncio.to_thread(self._plan_with_hub, repo, revision, (), (), quant)
            return self._admit(plan, revision, (), None)
        for job in self._jobs.values():
            if job.active and job.same_request(repo, revision, files) and job.include == include:
                return job
        plan = await asyncio.to_thread(self._planner, repo, revision, files, include)
        return self._admit(plan, revision, include, None)

    async def resume(self, job_id: str) -> Job:
        """Start an interrupted, failed or cancelled job again, pinned to its commit."""
        job = self.get(job_id)
        if job.active or job.state == "finished":
            return job
        pin = job.commit or job.revision
        plan = await asyncio.to_thread(self._planner, job.repo, pin, job.files, ())
        return self._admit(plan, job.revision, job.include, self.get(job_id))

    async def cancel(self, job_id: str) -> Job:
        """Stop a job; its partial file stays for a later resume. Ended jobs are left alone."""
        job = self.get(job_id)
        if job.state == "queued":
            self._set_state(job, "cancelled")
            return job
        task = self._tasks.get(job_id)
        if job.state != "running" or task is None:
            return job
        self._cancelling.add(job_id)
        child = self._children.get(job_id)
        if child is not None and child.alive:
            with contextlib.suppress(ChildFailed):
                await child.send(Cancel(request_id=job_id))
        try:
            async with asyncio.timeout(self._settings.child_stop_timeout):
                await asyncio.shield(task)
        except TimeoutError:
            if child is not None:
                await child.kill()
            await task
        return job

    async def close(self) -> None:
        """Stop every running job (it resumes after a restart) and persist."""
        self._closing = True
        for job in self._jobs.values():
            if job.state == "queued":
                job.state = "interrupted"
        stops = [c.stop(self._settings.child_stop_timeout) for c in self._children.values()]
        await asyncio.gather(*stops, return_exceptions=True)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._persist()

    # --- admission and scheduling ---------------------------------------------------------

    def _admit(
        self, plan: Plan, revision: str | None, include: tuple[str, ...], job: Job | None
    ) -> Job:
        if plan.repo in self._deleting:
            raise Conflict(
                f"{plan.repo} is being deleted; pull it again once that is done",
                param="repo",
                code="delete_in_progress",
            )
        names = tuple(f.name for f in plan.files)
        for other in self._jobs.values():
            if not other.active or other.repo != plan.repo:
                continue
            if other.files == names:
                return other  # a concurrent pull of the same files got here first
            if overlap := set(other.files) & set(names):
                raise Conflict(
                    f"job {other.id} is already downloading {', '.join(sorted(overlap))}",
                    param="files",
                    code="download_in_progress",
                )
        promised = sum(max(0, j.bytes_total - j.bytes_done) for j in self.jobs() if j.active)
        check_disk(plan, self.hub, promised, self._settings.hub.disk_reserve_bytes)
        if job is None:  # an earlier attempt at the same files keeps its id
            earlier = [
                j
                for j in self._jobs.values()
                if j.state != "finished" and j.same_request(plan.repo, revision, names)
            ]
            job = earlier[0] if earlier else Job(id=f"dl-{secrets.token_hex(6)}", repo=plan.repo)
        job.revision, job.commit, job.files, job.include = revision, plan.commit, names, include
        job.state, job.error, job.error_code, job.bytes_total = "queued", None, None, plan.total
        job.bytes_done = plan.total - sum(
            self.hub.missing_bytes(plan.repo, f.etag, f.size) for f in plan.files
        )
        self._jobs[job.id] = job
        self._trim()
        log.info("queued download %s: %s (%d files)", job.id, job.repo, len(names))
        self._set_state(job, "queued")
        self._schedule()
        return job

    def _schedule(self) -> None:
        if self._closing:
            return
        running = sum(1 for job in self._jobs.values() if job.state == "running")
        for job in self.jobs():
            if running >= self._settings.hub.max_concurrent_downloads:
                break
            if job.state == "queued":
                running += 1
                self._set_state(job, "running")
                self._tasks[job.id] = asyncio.create_task(self._run(job), name=f"dl:{job.id}")

    def _trim(self) -> None:
        ended = [j for j in self.jobs() if not j.active]
        for job in ended[: max(0, len(self._jobs) - self._settings.hub.keep_jobs)]:
            del self._jobs[job.id]

    # --- one job's child ------------------------------------------------------------------

    def _command(self, job: Job) -> ChildCommand:
        argv = [
            sys.executable, "-m", "corral.child", "download",
            "--cache-dir", str(self.cache_dir),
            "--progress-interval", str(self._settings.hub.progress_interval),
        ]  # fmt: skip
        env = {"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        if self._settings.hub.token is not None:
            env["HF_TOKEN"] = self._settings.hub.token.get_secret_value()
        return ChildCommand(argv, label=f"download:{job.id}", env=env)

    async def _run(self, job: Job) -> None:
        child = ChildProcess(self._command(job), on_frame=lambda frame: self._on_frame(job, frame))
        self._children[job.id] = child
        try:
            await child.spawn(self._settings.child_hello_timeout)
            if job.id not in self._cancelling and not self._closing:
                start = DownloadStart(
                    job_id=job.id,
                    repo=job.repo,
                    revision=job.revision,
                    commit=job.commit,
                    files=job.files,
                )
                await child.send(start)
                self._ended(job, _exit_reason(await child.wait()))
            else:
                await child.stop(self._settings.child_stop_timeout)
                self._ended(job, "the download was cancelled")
        except ChildFailed as exc:
            self._ended(job, exc.message)
        finally:
            self._children.pop(job.id, None)
            self._tasks.pop(job.id, None)
            self._cancelling.discard(job.id)
            self._schedule()

    def _ended(self, job: Job, reason: str) -> None:
        """The child is gone; a job still running got no result frame."""
        if job.state != "running":
            return
        if job.id in self._cancelling:
            self._set_state(job, "cancelled")
        elif self._closing:
            self._set_state(job, "interrupted")
        else:
            job.error, job.error_code = reason, "error"
            log.error("download %s failed: %s", job.id, reason)
            self._set_state(job, "failed")

    def _on_frame(self, job: Job, frame: FromChild) -> None:
        if job.state != "running":
            return
        if isinstance(frame, DownloadProgress):
            job.bytes_done, job.bytes_total = frame.bytes_done, frame.bytes_total
            job.bytes_per_second = frame.bytes_per_second
            job.file_progress = dict(frame.files)
            self.events.publish(job.model_copy())
        elif isinstance(frame, DownloadFinished):
            job.paths, job.commit = frame.paths, frame.commit or job.commit
            job.bytes_done, job.bytes_per_second = job.bytes_total, 0.0
            log.info("download %s finished: %s", job.id, job.repo)
            self._set_state(job, "finished")
        elif isinstance(frame, DownloadFailed):
            if frame.code == "cancelled":
                self._ended(job, frame.reason)
                return
            job.error, job.error_code = frame.reason, frame.code
            log.error("download %s failed: %s", job.id, frame.reason)
            self._set_state(job, "failed")

    def _set_state(self, job: Job, state: JobState) -> None:
        job.state = state
        if not job.active:
            job.bytes_per_second = 0.0
        job.updated_at = time.time()
        self._persist()
        self.events.publish(job.model_copy())

    def _persist(self) -> None:
        try:
            self._file.save(self.jobs())
        except OSError as exc:  # a full disk must not stop downloads from being reported
            log.error("could not save download jobs: %s", exc)

    def _plan_with_hub(
        self,
        repo: str,
        revision: str | None,
        files: tuple[str, ...],
        include: tuple[str, ...],
        quant: str | None = None,
    ) -> Plan:
        hub = self._settings.hub
        token = hub.token.get_secret_value() if hub.token is not None else None
        return plan_pull(
            repo, revision, files, include, token=token, timeout=hub.metadata_timeout, quant=quant
        )


def _exit_reason(exit_: ChildExit) -> str:
    code = exit_.returncode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
    tail = " | ".join(exit_.stderr_tail[-3:])
    return f"the download process {how} without a result" + (f": {tail}" if tail else "")
