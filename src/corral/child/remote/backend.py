"""The remote backend: generate and embed jobs as calls to an OpenAI-compatible upstream.

Each job runs on a worker thread of the runtime with one streaming HTTP call; many run at
once (``concurrency``), since the work happens on the upstream. A prober thread checks every
replica's ``/models`` in the background, so the shelf shows reachable, degraded or
unreachable before any request, and an ejected replica comes back once it answers.
"""

from __future__ import annotations

import base64
import json
import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from corral.child.remote.replicas import Replica, ReplicaPool
from corral.child.remote.upstream import Upstream
from corral.child.remote.wire import ChunkReader, request_body
from corral.child.runtime import EncodeJob, Job, RequestFailed, SlotStats
from corral.protocol.messages import ChildKind, Embeddings, FinishReason, Ready, Usage

log = logging.getLogger("corral.child.remote")

PROBE_INTERVAL_S = 10.0  # healthy replicas; ejected ones are probed when their back-off ends
PROBE_TICK_S = 0.5


@dataclass
class RemoteBackend:
    model_id: str
    urls: list[str]
    upstream_model: str
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 120.0  # between two chunks: the stall timeout, a little sooner
    concurrency: int = 64
    serves: tuple[str, ...] = ("chat", "completion")
    kind: ChildKind = "remote"
    on_change: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        self.capabilities = self.serves
        self._stop = threading.Event()
        self.pool = ReplicaPool(self.urls, on_change=lambda: self.on_change())
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = httpx.Timeout(self.read_timeout, connect=self.connect_timeout, pool=None)
        # Idle connections are dropped before llama-server's HTTP library drops them (5 s),
        # so a request rarely meets one the upstream has just closed.
        limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=self.concurrency, keepalive_expiry=4.0
        )
        self.client = httpx.Client(headers=headers, timeout=timeout, limits=limits)
        self.upstream = Upstream(self.pool, self.client)

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        # Nothing to load here: an unreachable upstream shows on the shelf and recovers when
        # it answers, without a restart.
        progress(0.0, "probing the upstream")
        for replica in self.pool.replicas:
            self._probe(replica)
        self.on_change()  # the first health report, even when nothing changed
        threading.Thread(target=self._probe_loop, name="prober", daemon=True).start()
        return Ready(model=self.model_id, n_ctx=0, chat_template=True, parallel=self.concurrency)

    def slot_stats(self) -> SlotStats:
        health = self.pool.health()
        busy = sum(h.outstanding for h in health)
        return SlotStats(busy=busy, total=self.concurrency, upstreams=health)

    # --- generation -----------------------------------------------------------------------

    def generate(self, job: Job) -> tuple[FinishReason, Usage]:
        path, body = request_body(job.request, self.upstream_model)
        replica, response = self.upstream.open(path, body, job.request.cache_key, stream=True)
        try:
            job.started(0)  # the prompt's token count comes with the upstream's usage
            return self._relay(job, replica, response)
        finally:
            self.upstream.finish(replica, response)

    def _relay(
        self, job: Job, replica: Replica, response: httpx.Response
    ) -> tuple[FinishReason, Usage]:
        reader = ChunkReader()
        ended = False
        try:
            for line in response.iter_lines():
                if job.cancelled.is_set():
                    return "cancelled", self._usage(job, reader)
                if not line.startswith("data:"):
                    continue  # comments (": ping"), event names, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    ended = True
                    break
                chunk = json.loads(data)
                if isinstance(chunk, dict) and chunk.get("error") is not None:
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise RequestFailed(
                        "upstream_error", f"the upstream {replica.name} failed: {message}"
                    )
                for piece in reader.read(chunk):
                    job.emit(
                        piece.text,
                        piece.tokens,
                        index=piece.index,
                        logprobs=piece.logprobs,
                        finish_reason=piece.finish_reason,
                        tool_calls=piece.tool_calls,
                        stop_sequence=piece.stop_sequence,
                    )
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            error = f"{replica.name} broke off the stream: {type(exc).__name__}: {exc}"
            self.pool.failed(replica, error)
            raise RequestFailed("upstream_disconnected", f"the upstream {error}") from None
        if not ended and not reader.finish:
            error = f"{replica.name} ended the stream before it finished"
            self.pool.failed(replica, error)
            raise RequestFailed("upstream_disconnected", f"the upstream {error}")
        self.pool.succeeded(replica)
        return reader.finish_reason(), self._usage(job, reader)

    @staticmethod
    def _usage(job: Job, reader: ChunkReader) -> Usage:
        if reader.usage is not None:
            return reader.usage
        return Usage(prompt_tokens=0, completion_tokens=job.tokens_sent)

    # --- embeddings -----------------------------------------------------------------------

    def encode(self, job: EncodeJob) -> Usage:
        request = job.request
        if request.type != "embed":
            raise RequestFailed("unsupported", "remote models do not rerank", "model")
        inputs: list[list[int]] | list[str] = [list(ids) for ids in request.token_ids]
        body: dict[str, object] = {
            "model": self.upstream_model,
            "input": inputs or list(request.texts),
        }
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        replica, response = self.upstream.open("/embeddings", body, None, stream=False)
        try:
            answer = response.json()
            rows = sorted(answer["data"], key=lambda row: row["index"])
            vectors = tuple(_b64(row["embedding"]) for row in rows)
            prompt_tokens = int((answer.get("usage") or {}).get("prompt_tokens") or 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise RequestFailed(
                "upstream_error", f"the upstream {replica.name} sent no embeddings: {exc}"
            ) from None
        finally:
            self.upstream.finish(replica, response)
        self.pool.succeeded(replica)
        job.started(prompt_tokens)
        job.channel.send(Embeddings(request_id=job.request_id, start=0, vectors=vectors))
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=0)

    # --- health ---------------------------------------------------------------------------

    def _probe(self, replica: Replica) -> None:
        try:
            response = self.client.get(replica.url + "/models", timeout=self.connect_timeout)
        except httpx.TransportError as exc:
            self.pool.failed(replica, f"{replica.name}: {type(exc).__name__}: {exc or 'no answer'}")
            return
        if response.status_code >= 400:
            self.pool.failed(replica, f"{replica.name}/models answered {response.status_code}")
        else:
            self.pool.succeeded(replica)

    def _probe_loop(self) -> None:
        waited = 0.0
        while not self._stop.wait(PROBE_TICK_S):
            waited += PROBE_TICK_S
            due = self.pool.due_for_probe()
            if waited >= PROBE_INTERVAL_S:
                waited, due = 0.0, list(self.pool.replicas)
            for replica in due:
                self._probe(replica)


def _b64(vector: object) -> str:
    """An embedding as the protocol carries it: base64 of little-endian float32 values."""
    if isinstance(vector, str):  # the upstream answered base64 already
        return vector
    assert isinstance(vector, list)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
