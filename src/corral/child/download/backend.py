"""``python -m corral.child download --cache-dir DIR``: one hub download job per process.

After ``hello`` the child waits for one ``download_start``, plans the job (file list, HEAD of
each file), then fetches the files one by one (child/hub_fetch.py) while a reporter thread
sends ``download_progress`` a few times a second. It ends with ``download_finished`` (the
snapshot paths) or ``download_failed`` (a reason and a code).

A ``cancel`` or ``shutdown`` frame, or stdin closing, ends the process at once: every byte
written so far is already in the ``.incomplete`` file (written unbuffered) and every rename is
atomic, so exiting mid-transfer is safe, and the next attempt resumes from there.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections import deque
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from corral.child.download.hub_fetch import Cancelled, ChecksumMismatch, RemoteFile, RepoCache
from corral.child.stdio import Channel
from corral.protocol import PROTOCOL_VERSION, ProtocolError
from corral.protocol.hub_names import (
    HubNameError,
    check_commit,
    check_file_name,
    check_pattern,
    check_repo_id,
    check_revision,
    select_files,
)
from corral.protocol.messages import (
    Cancel,
    DownloadFailed,
    DownloadFailure,
    DownloadFinished,
    DownloadProgress,
    DownloadStart,
    Error,
    Hello,
    Shutdown,
)

log = logging.getLogger("corral.child")

RATE_WINDOW = 3.0  # seconds of history behind bytes_per_second


class JobFailed(Exception):
    def __init__(self, code: DownloadFailure, reason: str) -> None:
        super().__init__(reason)
        self.code: DownloadFailure = code
        self.reason = reason


class Progress:
    """Byte counts per file, written by the download thread and read by the reporter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[int, int]] = {}
        self._samples: deque[tuple[float, int]] = deque()
        self._moved = 0  # bytes received in this process, for the rate
        self.version = 0

    def plan(self, remote: list[RemoteFile], present: list[int]) -> None:
        with self._lock:
            self._files = {
                r.name: (done, r.size or done) for r, done in zip(remote, present, strict=True)
            }
            self.version += 1

    def report(self, name: str, done: int) -> None:
        with self._lock:
            before, total = self._files.get(name, (0, 0))
            if done > before:
                self._moved += done - before
            self._files[name] = (done, max(total, done))
            self.version += 1

    def frame(self, job_id: str) -> DownloadProgress:
        now = time.monotonic()
        with self._lock:
            files = dict(self._files)
            self._samples.append((now, self._moved))
            while len(self._samples) > 1 and now - self._samples[0][0] > RATE_WINDOW:
                self._samples.popleft()
            first_at, first_moved = self._samples[0]
            rate = (self._moved - first_moved) / (now - first_at) if now > first_at else 0.0
        return DownloadProgress(
            job_id=job_id,
            bytes_done=sum(done for done, _ in files.values()),
            bytes_total=sum(total for _, total in files.values()),
            bytes_per_second=max(rate, 0.0),
            files=files,
        )


class DownloadChild:
    def __init__(self, channel: Channel, cache_dir: Path, interval: float) -> None:
        self._channel = channel
        self._cache_dir = cache_dir
        self._interval = interval
        self._starts: queue.Queue[DownloadStart | None] = queue.Queue()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._job_id: str | None = None
        self._ended = False
        self._progress = Progress()

    def run(self) -> int:
        self._channel.send(
            Hello(
                protocol_version=PROTOCOL_VERSION,
                kind="download",
                pid=os.getpid(),
                capabilities=("resume", "verify"),
            )
        )
        threading.Thread(target=self._read_loop, name="control", daemon=True).start()
        start = self._starts.get()
        if start is None:
            return 0
        with self._lock:
            self._job_id = start.job_id
        reporter = threading.Thread(target=self._report_loop, name="progress", daemon=True)
        reporter.start()
        try:
            paths, commit = self._download(start)
        except JobFailed as exc:
            log.error("download %s failed: %s", start.repo, exc.reason)
            return self._end(DownloadFailed(job_id=start.job_id, reason=exc.reason, code=exc.code))
        self._channel.send(self._progress.frame(start.job_id))
        log.info("download %s finished: %d files", start.repo, len(paths))
        return self._end(DownloadFinished(job_id=start.job_id, paths=paths, commit=commit))

    # --- the job --------------------------------------------------------------------------

    def _download(self, start: DownloadStart) -> tuple[tuple[str, ...], str]:
        try:
            return self._fetch_all(start)
        except JobFailed:
            raise
        except Cancelled:
            raise JobFailed("cancelled", "the download was cancelled") from None
        except HubNameError as exc:
            raise JobFailed("invalid", str(exc)) from None
        except GatedRepoError:
            raise JobFailed(
                "gated",
                f"{start.repo} is gated: accept its terms on the hub and configure hub.token",
            ) from None
        except RepositoryNotFoundError:
            raise JobFailed(
                "not_found",
                f"repository {start.repo} was not found (or it is private and no valid token "
                "was configured)",
            ) from None
        except RevisionNotFoundError:
            revision = start.commit or start.revision or "main"
            raise JobFailed(
                "not_found", f"revision {revision} of {start.repo} was not found"
            ) from None
        except EntryNotFoundError as exc:
            raise JobFailed("not_found", f"a file was not found in {start.repo}: {exc}") from None
        except ChecksumMismatch as exc:
            raise JobFailed(
                "checksum", f"a file of {start.repo} failed verification and was deleted: {exc}"
            ) from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            detail = exc.server_message or _first_line(exc)
            raise JobFailed("network", f"the hub answered HTTP {status}: {detail}") from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise JobFailed("disk_full", f"the disk is full: {exc}") from None
            raise JobFailed("network", f"{type(exc).__name__}: {_first_line(exc)}") from None
        except Exception as exc:
            log.exception("download failed")
            raise JobFailed("error", f"{type(exc).__name__}: {_first_line(exc)}") from None

    def _fetch_all(self, start: DownloadStart) -> tuple[tuple[str, ...], str]:
        repo = check_repo_id(start.repo)
        revision = check_revision(start.revision) if start.revision else "main"
        pinned = check_commit(start.commit) if start.commit else None
        cache = RepoCache(self._cache_dir, repo)
        names = self._file_names(start, repo, pinned or revision)
        log.info("download %s@%s: %d files", repo, pinned or revision, len(names))
        remote: list[RemoteFile] = []
        for name in names:
            # The first HEAD fixes the commit; the rest ask for that commit, so one job never
            # mixes files of two commits when a branch moves while we plan.
            try:
                remote.append(cache.head(name, pinned or revision))
            except EntryNotFoundError:
                raise JobFailed(
                    "not_found", f"{name} was not found in {repo} at {pinned or revision}"
                ) from None
            pinned = pinned or remote[0].commit
        self._progress.plan(remote, [cache.bytes_present(r) for r in remote])
        for item in remote:

            def report(done: int, name: str = item.name) -> None:
                self._progress.report(name, done)

            cache.fetch(item, report, self._cancelled)
        paths = tuple(str(cache.link(item)) for item in remote)
        commit = remote[0].commit if remote else (pinned or "")
        if commit:
            cache.set_ref(revision, commit)
        return paths, commit

    def _file_names(self, start: DownloadStart, repo: str, revision: str) -> list[str]:
        names = [check_file_name(name) for name in start.files]
        if start.include or not start.files:
            patterns = [check_pattern(p) for p in start.include]
            info = HfApi().model_info(repo, revision=revision)
            listed = [s.rfilename for s in info.siblings or []]
            matched = select_files(listed, patterns) if patterns else listed
            if start.include and not matched:
                raise JobFailed(
                    "not_found",
                    f"no file of {repo} matches {', '.join(start.include)}",
                )
            # Names from the hub's listing become paths: they are checked like client input.
            names += [check_file_name(name) for name in matched if name not in names]
        return names

    # --- control and reporting ------------------------------------------------------------

    def _end(self, frame: DownloadFinished | DownloadFailed) -> int:
        with self._lock:
            if self._ended:
                return 0
            self._ended = True
            self._channel.send(frame)
        return 0 if isinstance(frame, DownloadFinished) else 1

    def _report_loop(self) -> None:
        job_id = self._job_id
        assert job_id is not None
        sent = 0  # nothing to tell before the plan
        while not self._ended:
            version = self._progress.version
            if version != sent:
                sent = version
                frame = self._progress.frame(job_id)
                with self._lock:
                    if not self._ended:
                        self._channel.send(frame)
            time.sleep(self._interval)

    def _read_loop(self) -> None:
        for message in self._channel.messages():
            if isinstance(message, ProtocolError):
                log.error("protocol error: %s", message)
            elif isinstance(message, DownloadStart) and self._job_id is None:
                self._starts.put(message)
            elif isinstance(message, Cancel | Shutdown):
                self._abort("the download was cancelled")
            else:
                self._channel.send(
                    Error(code="unsupported", message=f"{message.type}: one job per process")
                )
        self._abort("the supervisor closed the pipe")

    def _abort(self, reason: str) -> None:
        """Stop now: tell the supervisor (unless the job already ended) and exit."""
        self._cancelled.set()
        with self._lock:
            if self._job_id is not None and not self._ended:
                self._ended = True
                self._channel.send(
                    DownloadFailed(job_id=self._job_id, reason=reason, code="cancelled")
                )
        log.info("%s", reason)
        os._exit(0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
