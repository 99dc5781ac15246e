"""The child's main loop, shared by every backend.

The main thread loads the model and then runs generate jobs; a reader thread handles control
messages from the first moment, so a cancel or shutdown during a slow load works. The child
exits when stdin closes or a ``shutdown`` arrives.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, runtime_checkable

from typing_extensions import TypeVar

from corral.child.stdio import Channel
from corral.protocol import PROTOCOL_VERSION, ProtocolError
from corral.protocol.messages import (
    Cancel,
    ChildKind,
    Delta,
    Done,
    Embed,
    Error,
    FinishReason,
    Generate,
    Hello,
    LoadProgress,
    Ready,
    Rerank,
    Shutdown,
    Started,
    Stats,
    StatsRequest,
    TokenLogprob,
    UpstreamHealth,
    Usage,
)
from corral.protocol.speech import Speak, Transcribe
from corral.protocol.tools import ToolCallDelta

log = logging.getLogger("corral.child")

JobRequest = Generate | Transcribe | Speak
# The request a backend serves; ``Job`` alone means a generate job, as it always did.
R = TypeVar("R", bound=JobRequest, default=Generate)


@dataclass
class Job(Generic[R]):
    """One request as a backend sees it."""

    request: R
    channel: Channel
    cancelled: threading.Event = field(default_factory=threading.Event)
    tokens_sent: int = 0

    @property
    def request_id(self) -> str:
        return self.request.request_id

    def started(self, prompt_tokens: int) -> None:
        self.channel.send(Started(request_id=self.request_id, prompt_tokens=prompt_tokens))

    def emit(
        self,
        text: str,
        tokens: int,
        *,
        index: int = 0,
        logprobs: tuple[TokenLogprob, ...] = (),
        finish_reason: FinishReason | None = None,
        tool_calls: tuple[ToolCallDelta, ...] = (),
        stop_sequence: str | None = None,
    ) -> None:
        self.tokens_sent += tokens
        self.channel.send(
            Delta(
                request_id=self.request_id,
                text=text,
                tokens=tokens,
                index=index,
                logprobs=logprobs,
                finish_reason=finish_reason,
                stop_sequence=stop_sequence,
                tool_calls=tool_calls,
            )
        )


@dataclass
class EncodeJob:
    """One embed or rerank request: no tokens are generated, results go out as frames."""

    request: Embed | Rerank
    channel: Channel
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    def started(self, prompt_tokens: int) -> None:
        self.channel.send(Started(request_id=self.request_id, prompt_tokens=prompt_tokens))


class RequestFailed(Exception):
    """A request-level failure the backend can name (prompt too long, bad parameter)."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


class Backend(Protocol[R]):
    kind: ChildKind
    capabilities: tuple[str, ...]
    concurrency: int  # requests served at once; more wait in the child's queue

    def load(self, progress: Callable[[float, str], None]) -> Ready: ...

    def generate(self, job: Job[R]) -> tuple[FinishReason, Usage]: ...


@runtime_checkable
class Encoder(Protocol):
    """A backend that also embeds or reranks (the hf child's encoder models)."""

    def encode(self, job: EncodeJob) -> Usage: ...


@dataclass(frozen=True)
class SlotStats:
    busy: int = 0
    total: int = 0
    cached_tokens: int = 0
    parked_bytes: int = 0
    upstreams: tuple[UpstreamHealth, ...] = ()


@runtime_checkable
class ReportsSlots(Protocol):
    """A backend that batches requests into slots (llama) and says how they are used."""

    on_change: Callable[[], None]  # set by the runtime before load; called when slots change

    def slot_stats(self) -> SlotStats: ...


class Runtime(Generic[R]):
    """``accepts`` names the request types ``generate`` serves; embed and rerank go to an
    `Encoder` backend; anything else is ``unsupported``."""

    def __init__(
        self,
        backend: Backend[R],
        channel: Channel,
        accepts: tuple[type[R], ...] | None = None,
    ) -> None:
        self._backend = backend
        self._accepts: tuple[type[object], ...] = accepts or (Generate,)
        if isinstance(backend, ReportsSlots):
            backend.on_change = self._send_stats
        self._channel = channel
        self._jobs: dict[str, Job[R] | EncodeJob] = {}
        self._jobs_lock = threading.Lock()
        self._queue: queue.Queue[Job[R] | EncodeJob | None] = queue.Queue()
        self._loaded = threading.Event()
        self._tokens_generated = 0

    def run(self) -> int:
        backend, channel = self._backend, self._channel
        channel.send(
            Hello(
                protocol_version=PROTOCOL_VERSION,
                kind=backend.kind,
                pid=os.getpid(),
                capabilities=backend.capabilities,
            )
        )
        threading.Thread(target=self._read_loop, name="control", daemon=True).start()

        def progress(fraction: float, message: str) -> None:
            channel.send(LoadProgress(progress=min(max(fraction, 0.0), 1.0), message=message))

        try:
            ready = backend.load(progress)
        except Exception as exc:
            log.exception("load failed")
            channel.send(Error(code="load_failed", message=f"{type(exc).__name__}: {exc}"))
            return 3
        channel.send(ready)
        self._loaded.set()
        workers = [
            threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            for i in range(max(1, backend.concurrency))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return 0

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            self._run_job(job)
        self._queue.put(None)  # pass the stop marker on to the next worker

    def _run_job(self, job: Job[R] | EncodeJob) -> None:
        try:
            if job.cancelled.is_set():
                reason: FinishReason = "cancelled"
                usage = Usage(prompt_tokens=0, completion_tokens=0)
            elif isinstance(job, EncodeJob):
                reason, usage = "stop", self._encode(job)
            else:
                reason, usage = self._backend.generate(job)
            with self._jobs_lock:
                self._tokens_generated += usage.completion_tokens
            self._channel.send(Done(request_id=job.request_id, finish_reason=reason, usage=usage))
            log.info(
                "request %s finished: reason=%s completion_tokens=%d",
                job.request_id,
                reason,
                usage.completion_tokens,
            )
        except RequestFailed as exc:
            self._channel.send(
                Error(request_id=job.request_id, code=exc.code, message=str(exc), param=exc.param)
            )
        except Exception as exc:
            log.exception("generation failed request_id=%s", job.request_id)
            self._channel.send(
                Error(
                    request_id=job.request_id,
                    code="generation_failed",
                    message=f"{type(exc).__name__}: {exc}",
                )
            )
        finally:
            with self._jobs_lock:
                self._jobs.pop(job.request_id, None)

    def _encode(self, job: EncodeJob) -> Usage:
        if not isinstance(self._backend, Encoder):
            raise RequestFailed("unsupported", f"this model does not serve {job.request.type}")
        return self._backend.encode(job)

    def _read_loop(self) -> None:
        for message in self._channel.messages():
            if isinstance(message, ProtocolError):
                log.error("protocol error: %s", message)
                self._channel.send(
                    Error(
                        request_id=message.request_id, code="protocol_error", message=str(message)
                    )
                )
            elif isinstance(message, self._accepts):
                job: Job[R] = Job(request=message, channel=self._channel)  # type: ignore[arg-type]
                self._accept(job)
            elif isinstance(message, Embed | Rerank):
                self._accept(EncodeJob(request=message, channel=self._channel))
            elif isinstance(message, Cancel):
                with self._jobs_lock:
                    running = self._jobs.get(message.request_id)
                if running is not None:
                    running.cancelled.set()
            elif isinstance(message, StatsRequest):
                self._send_stats()
            elif isinstance(message, Shutdown):
                break
            else:
                self._channel.send(
                    Error(code="unsupported", message=f"{message.type} is not served by this child")
                )
        self._stop()

    def _send_stats(self) -> None:
        with self._jobs_lock:
            active = len(self._jobs)
        backend = self._backend
        slots = backend.slot_stats() if isinstance(backend, ReportsSlots) else SlotStats()
        self._channel.send(
            Stats(
                active_requests=active,
                queued_requests=self._queue.qsize(),
                tokens_generated=self._tokens_generated,
                slots_busy=slots.busy,
                slots_total=slots.total,
                cached_tokens=slots.cached_tokens,
                kv_parked_bytes=slots.parked_bytes,
                upstreams=slots.upstreams,
            )
        )

    def _accept(self, job: Job[R] | EncodeJob) -> None:
        request = job.request
        with self._jobs_lock:
            duplicate = request.request_id in self._jobs
            if not duplicate:
                self._jobs[request.request_id] = job
        if duplicate:
            self._channel.send(
                Error(
                    request_id=request.request_id,
                    code="duplicate_request",
                    message="request_id in use",
                )
            )
            return
        self._queue.put(job)

    def _stop(self) -> None:
        with self._jobs_lock:
            for job in self._jobs.values():
                job.cancelled.set()
        if not self._loaded.is_set():
            # A native load cannot be interrupted from Python; the process is the unit.
            os._exit(0)
        self._queue.put(None)
