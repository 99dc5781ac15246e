"""One child process: spawn, handshake, frame dispatch, stop.

A reader task owns the child's stdout: it routes each frame to the request it names, and when
the child exits it fails every open request with the exit code and the tail of stderr. The
stderr task turns log lines into our log, tagged with the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from corral.protocol import (
    FROM_CHILD,
    PROTOCOL_VERSION,
    LineSplitter,
    ProtocolError,
    decode,
    encode,
)
from corral.protocol.messages import (
    Cancel,
    Delta,
    Done,
    Embed,
    Embeddings,
    Error,
    FromChild,
    Generate,
    Hello,
    LoadProgress,
    Ready,
    Rerank,
    Scores,
    Shutdown,
    Started,
    Stats,
    ToChild,
)
from corral.protocol.speech import (
    AudioChunk,
    Segment,
    Speak,
    SpeechStarted,
    Transcribe,
    TranscriptionStarted,
)
from corral.supervisor.daemon.sdnotify import CHILD_ENV_DROP
from corral.supervisor.errors import BadGateway
from corral.supervisor.request_events import RequestEvents

# How long an exited child's stderr may take to reach EOF before its exit is reported.
STDERR_DRAIN_S = 2.0
log = logging.getLogger("corral.child")
T = TypeVar("T")

STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class ChildCommand:
    argv: Sequence[str]
    label: str  # the model id (or job id) the child serves, for logs and errors
    env: dict[str, str] = field(default_factory=dict, repr=False)  # may hold a token


class ChildFailed(BadGateway):
    """The child died, or broke the protocol, while a request was open."""


@dataclass(frozen=True)
class ChildExit:
    label: str
    returncode: int | None
    stderr_tail: tuple[str, ...]

    def describe(self) -> str:
        code = self.returncode
        how = (
            f"was killed by signal {-code}"
            if code is not None and code < 0
            else f"exited with code {code}"
        )
        tail = " | ".join(self.stderr_tail[-5:])
        return f"the model process {how}" + (f"; last log lines: {tail}" if tail else "")


SpeechEvent = TranscriptionStarted | Segment | SpeechStarted | AudioChunk
RequestEvent = Started | Delta | Embeddings | Scores | Done | Error | ChildFailed | SpeechEvent


class RequestHandle:
    """The frames of one request, in order, ending with Done, Error or ChildFailed."""

    def __init__(self, request_id: str, child: ChildProcess) -> None:
        self.request_id = request_id
        self._child = child
        self._queue = RequestEvents()  # bounded: a reader that stops reading is given up
        self.finished = False

    def _put(self, event: RequestEvent) -> None:
        if not self._queue.put(event) and not self.finished:
            self.finished = True  # the reader is told (an error); the child need not go on
            self._child.send_nowait(Cancel(request_id=self.request_id))

    async def next_event(self) -> RequestEvent:
        event = await self._queue.get()
        if isinstance(event, Done | Error | ChildFailed):
            self.finished = True
        return event

    async def cancel(self) -> None:
        if not self.finished:
            await self._child.send(Cancel(request_id=self.request_id))


class ChildProcess:
    def __init__(
        self,
        command: ChildCommand,
        *,
        on_exit: Callable[[ChildExit], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_frame: Callable[[FromChild], None] | None = None,
    ) -> None:
        """``on_frame`` gets the frames that belong to no request and no start-up step (a
        download child's progress and result, say)."""
        self.command = command
        self._on_exit = on_exit
        self._on_progress = on_progress
        self._on_frame = on_frame
        self._proc: asyncio.subprocess.Process | None = None
        self._requests: dict[str, RequestHandle] = {}
        self._hello: asyncio.Future[Hello] | None = None
        self._ready: asyncio.Future[Ready] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._logs: asyncio.Task[None] | None = None
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._exited = asyncio.Event()
        self._stopping = False
        self.exit: ChildExit | None = None
        self.stats: Stats | None = None
        """The child's last stats frame (a llama child sends one when its slots change)."""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and not self._exited.is_set()

    @property
    def open_requests(self) -> int:
        return len(self._requests)

    async def start(self, hello_timeout: float, load_timeout: float) -> Ready:
        """Spawn and wait for ``ready``; raises ChildFailed on any failure (the child is gone)."""
        ready = await self._launch(hello_timeout, wait_ready=True)
        assert ready is not None
        return await self._within(ready, load_timeout)

    async def spawn(self, hello_timeout: float) -> None:
        """Spawn and wait for ``hello`` only, for children that send no ``ready`` (downloads)."""
        await self._launch(hello_timeout, wait_ready=False)

    async def _launch(
        self, hello_timeout: float, *, wait_ready: bool
    ) -> asyncio.Future[Ready] | None:
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        # No future for a child that never sends ready: an unawaited failed one would be logged.
        self._ready = loop.create_future() if wait_ready else None
        env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
        env.update(self.command.env, CORRAL_PARENT_PID=str(os.getpid()))
        self._proc = await asyncio.create_subprocess_exec(
            *self.command.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop children in order
        )
        self._logs = asyncio.create_task(self._read_logs(), name=f"child-err:{self.command.label}")
        self._tasks = [
            asyncio.create_task(self._read_frames(), name=f"child-out:{self.command.label}"),
            self._logs,
        ]
        hello = await self._within(self._hello, hello_timeout)
        if hello.protocol_version != PROTOCOL_VERSION:
            await self.kill()
            raise ChildFailed(
                f"model process speaks protocol {hello.protocol_version}, "
                f"the supervisor speaks {PROTOCOL_VERSION}"
            )
        return self._ready

    async def _within(self, future: asyncio.Future[T], seconds: float) -> T:
        """``future``'s result within ``seconds``; on any failure the child is killed first."""
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.shield(future)
        except TimeoutError:
            await self.kill()
            raise ChildFailed(
                f"{self.command.label}: the model process did not start in time"
            ) from None
        except ChildFailed:
            await self.kill()
            raise

    def send_nowait(self, message: ToChild) -> None:
        """Queue a frame to the child from synchronous code; a dead child gets nothing."""
        proc = self._proc
        if proc is not None and proc.stdin is not None and not self._exited.is_set():
            with contextlib.suppress(ConnectionError, RuntimeError):
                proc.stdin.write(encode(message))

    async def send(self, message: ToChild) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or self._exited.is_set():
            raise ChildFailed(self._exit_message())
        try:
            proc.stdin.write(encode(message))
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError):
            raise ChildFailed(self._exit_message()) from None

    async def open_request(
        self, message: Generate | Embed | Rerank | Transcribe | Speak
    ) -> RequestHandle:
        handle = RequestHandle(message.request_id, self)
        self._requests[message.request_id] = handle
        try:
            await self.send(message)
        except ChildFailed:
            self._requests.pop(message.request_id, None)
            raise
        return handle

    async def stop(self, grace: float) -> None:
        """Ask politely (shutdown frame, stdin EOF), then SIGTERM, then SIGKILL."""
        proc = self._proc
        if proc is None or self._exited.is_set():
            await self._finish_tasks()
            return
        self._stopping = True
        with contextlib.suppress(ChildFailed):
            await self.send(Shutdown())
        if proc.stdin is not None:
            proc.stdin.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace / 2 if sig is None else grace):
                    await self._exited.wait()
                break
        await self._finish_tasks()

    async def wait(self) -> ChildExit:
        """Until the child has exited and its output is read."""
        await self._exited.wait()
        await self._finish_tasks()
        assert self.exit is not None
        return self.exit

    async def kill(self) -> None:
        self._stopping = True
        if self._proc is not None and not self._exited.is_set():
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._exited.wait()
        await self._finish_tasks()

    async def _finish_tasks(self) -> None:
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _exit_message(self) -> str:
        if self.exit is not None:
            return f"{self.command.label}: {self.exit.describe()}"
        return f"{self.command.label}: the model process is not running"

    # --- reader tasks ---------------------------------------------------------------------

    async def _read_frames(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        splitter = LineSplitter()
        while chunk := await stdout.read(65536):
            for item in splitter.feed(chunk):
                if isinstance(item, ProtocolError):
                    self._protocol_error(item)
                    continue
                try:
                    self._dispatch(decode(FROM_CHILD, item))
                except ProtocolError as exc:
                    self._protocol_error(exc)
        returncode = await self._proc.wait()
        # The exit message quotes the last stderr lines: wait for the log reader to reach EOF,
        # bounded, since a grandchild that inherited stderr can keep it open.
        if self._logs is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STDERR_DRAIN_S):
                    await asyncio.shield(self._logs)
        self.exit = ChildExit(self.command.label, returncode, tuple(self._stderr_tail))
        self._exited.set()
        failure = ChildFailed(self._exit_message())
        for future in (self._hello, self._ready):
            if future is not None and not future.done():
                future.set_exception(failure)
        for handle in list(self._requests.values()):
            handle._put(failure)
        self._requests.clear()
        if not self._stopping:
            log.warning("%s", failure.message, extra={"model": self.command.label})
        if self._on_exit is not None:
            self._on_exit(self.exit)

    def _protocol_error(self, exc: ProtocolError) -> None:
        log.error("protocol error from %s: %s", self.command.label, exc)
        handle = self._requests.pop(exc.request_id, None) if exc.request_id else None
        if handle is not None:
            handle._put(ChildFailed(f"{self.command.label}: protocol error: {exc}"))

    def _dispatch(self, frame: FromChild) -> None:
        request_frames = Started | Delta | Embeddings | Scores | Done | Error | SpeechEvent
        if isinstance(frame, request_frames) and frame.request_id is not None:
            # A request ends here, not when its reader gets to the frame: a cancelled
            # request's reader may be gone already.
            if isinstance(frame, Done | Error):
                handle = self._requests.pop(frame.request_id, None)
            else:
                handle = self._requests.get(frame.request_id)
            if handle is not None:
                handle._put(frame)
        elif isinstance(frame, Hello):
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(frame)
        elif isinstance(frame, Ready):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(frame)
        elif isinstance(frame, Stats):
            self.stats = frame
        elif isinstance(frame, LoadProgress):
            if self._on_progress is not None:
                self._on_progress(frame.progress, frame.message)
        elif isinstance(frame, Error):
            failure = ChildFailed(f"{self.command.label}: {frame.code}: {frame.message}")
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(failure)
            else:
                log.error("%s", failure.message)
        elif self._on_frame is not None:
            self._on_frame(frame)
        else:
            log.debug("unhandled frame %s from %s", frame.type, self.command.label)

    async def _read_logs(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        stderr = self._proc.stderr
        while True:
            try:
                raw = await stderr.readline()
            except ValueError:  # a line over the stream limit: skip what was buffered
                continue
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._stderr_tail.append(line)
                log.info("%s", line, extra={"model": self.command.label})
