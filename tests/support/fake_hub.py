"""A Hugging Face style hub on loopback, for download tests: point ``HF_ENDPOINT`` at ``url``.

It serves what huggingface-hub calls: ``GET /api/models/{repo}[/revision/{rev}]`` (siblings with
sizes and LFS metadata), and ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with ``ETag``,
``X-Repo-Commit``, ``X-Linked-Etag``/``X-Linked-Size`` (LFS files), ``Accept-Ranges`` and ranged
206 answers; misses are 404s with the ``X-Error-Code`` huggingface-hub maps to its errors.

Knobs: ``throttle`` (bytes/s), ``stall(file, at)`` (hold a transfer at a byte offset until
``release()``, so a test can act mid-download without timing), ``corrupt`` (serve bytes that do
not match the advertised sha256), ``token`` (gated repos need it), and ``served`` (every
request with its Range header and byte count, to prove a resume).

It runs on its own thread and event loop, so sync tests and other processes can use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CHUNK = 64 << 10


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes]
    lfs: set[str]
    gated: bool = False
    extra_listing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Served:
    method: str
    repo: str
    file: str
    range: str | None
    status: int
    bytes_sent: int


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.throttle: float | None = None
        self.corrupt: set[str] = set()
        self.token: str | None = None
        self.served: list[Served] = []
        self.ranges: list[tuple[str, str | None]] = []  # (file, Range) of every GET, at its start
        self.auth_seen: list[str] = []
        self.url = ""
        self._stalls: dict[str, tuple[int, asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    # --- setup ----------------------------------------------------------------------------

    def add(
        self, repo: str, files: dict[str, bytes], *, lfs_from: int = 1024, gated: bool = False
    ) -> str:
        """Publish ``files`` as ``repo`` (branch main); files of ``lfs_from`` bytes or more are LFS."""
        commit = hashlib.sha1(repo.encode() + b"".join(sorted(files.values()))).hexdigest()
        lfs = {name for name, data in files.items() if len(data) >= lfs_from}
        self.repos[repo] = Repo(commit, dict(files), lfs, gated)
        return commit

    def stall(self, file: str, at: int) -> None:
        """Hold transfers of ``file`` when they reach byte ``at``, until ``release()``."""
        assert self._loop is not None
        done = threading.Event()

        def install() -> None:
            self._stalls[file] = (at, asyncio.Event())
            done.set()

        self._loop.call_soon_threadsafe(install)
        done.wait(5)

    def release(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._release_all)

    def _release_all(self) -> None:
        for _, gate in self._stalls.values():
            gate.set()

    def requests_for(self, file: str, method: str = "GET") -> list[Served]:
        """Finished requests (a stalled transfer shows up once it ends)."""
        return [s for s in list(self.served) if s.file == file and s.method == method]

    def ranges_for(self, file: str) -> list[str | None]:
        """The Range header of every GET of ``file``, including ones still running."""
        return [r for f, r in list(self.ranges) if f == file]

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeHub:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake hub did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._release_all)
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.run(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/api/models/{tail:.+}", self._model_info)
        app.router.add_get("/{tail:.+}", self._resolve)  # GET and HEAD
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        ready.set()
        await self._stop.wait()
        await runner.cleanup()

    # --- routes ---------------------------------------------------------------------------

    def _error(self, status: int, code: str, message: str, **headers: str) -> web.Response:
        return web.json_response(
            {"error": message},
            status=status,
            headers={"X-Error-Code": code, "X-Error-Message": message, **headers},
        )

    def _authorized(self, request: web.Request, repo: Repo) -> bool:
        auth = request.headers.get("Authorization")
        if auth:
            self.auth_seen.append(auth)
        return not repo.gated or auth == f"Bearer {self.token}"

    def _find(self, request: web.Request, repo_id: str, revision: str) -> Repo | web.Response:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if not self._authorized(request, repo):
            return self._error(401, "GatedRepo", "Access to this model is restricted")
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        return repo

    async def _model_info(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        repo_id, _, revision = tail.partition("/revision/")
        found = self._find(request, repo_id, revision or "main")
        if isinstance(found, web.Response):
            return found
        siblings: list[dict[str, Any]] = []
        for name, data in found.files.items():
            item: dict[str, Any] = {"rfilename": name, "size": len(data), "blobId": git_sha1(data)}
            if name in found.lfs:
                item["lfs"] = {"size": len(data), "sha256": sha256(data), "pointerSize": 134}
            siblings.append(item)
        siblings += [{"rfilename": name} for name in found.extra_listing]
        return web.json_response(
            {"id": repo_id, "sha": found.commit, "private": False, "siblings": siblings}
        )

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        repo_id, sep, rest = request.match_info["tail"].partition("/resolve/")
        if not sep:
            return self._error(404, "NotFound", "no such route")
        revision, _, file = rest.partition("/")
        found = self._find(request, repo_id, revision)
        if isinstance(found, web.Response):
            return found
        data = found.files.get(file)
        if data is None:
            return self._error(
                404, "EntryNotFound", "Entry not found", **{"X-Repo-Commit": found.commit}
            )
        headers = {"X-Repo-Commit": found.commit, "Accept-Ranges": "bytes"}
        if file in found.lfs:
            headers |= {"ETag": f'"{sha256(data)}"', "X-Linked-Etag": f'"{sha256(data)}"'}
            headers["X-Linked-Size"] = str(len(data))
        else:
            headers["ETag"] = f'"{git_sha1(data)}"'
        if request.method == "HEAD":
            response = web.StreamResponse(status=200, headers=headers)
            response.content_length = len(data)
            await response.prepare(request)
            self.served.append(Served("HEAD", repo_id, file, None, 200, 0))
            return response
        return await self._send(request, repo_id, file, data, headers)

    async def _send(
        self, request: web.Request, repo_id: str, file: str, data: bytes, headers: dict[str, str]
    ) -> web.StreamResponse:
        if file in self.corrupt:
            data = bytes(b ^ 0xFF for b in data[:16]) + data[16:]
        start = 0
        range_header = request.headers.get("Range")
        self.ranges.append((file, range_header))
        status = 200
        if range_header is not None:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.served.append(Served("GET", repo_id, file, range_header, 416, 0))
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(data) - start
        await response.prepare(request)
        sent = 0
        try:
            offset = start
            while offset < len(data):
                end = min(offset + CHUNK, len(data))
                stall = self._stalls.get(file)
                if stall is not None and offset < stall[0] <= end and not stall[1].is_set():
                    end = stall[0]
                await response.write(data[offset:end])
                sent += end - offset
                offset = end
                if stall is not None and offset == stall[0] and not stall[1].is_set():
                    await stall[1].wait()
                if self.throttle:
                    await asyncio.sleep(CHUNK / self.throttle)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.served.append(Served("GET", repo_id, file, range_header, status, sent))
        return response
