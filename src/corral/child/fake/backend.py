"""A child that speaks the real protocol without a model, for scheduler and fault tests.

Its reply is deterministic: ``reply_tokens`` words ``tok0 tok1 ...``. Knobs make it slow to
load, slow to generate, crash after N tokens, hang, or fail its load.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from corral.child.runtime import Job, RequestFailed
from corral.protocol.messages import ChildKind, FinishReason, Ready, Usage

HangMode = Literal["never", "load", "generate"]


@dataclass
class FakeBackend:
    model: str = "fake"
    load_delay: float = 0.0
    tokens_per_second: float = 0.0  # 0: as fast as possible
    reply_tokens: int = 8
    crash_after: int | None = None  # exit with code 13 after this many tokens in total
    hang: HangMode = "never"
    fail_load: bool = False
    n_ctx: int = 4096
    concurrency: int = 8
    kind: ChildKind = "fake"
    capabilities: tuple[str, ...] = ("chat", "completion")

    def __post_init__(self) -> None:
        self._tokens_total = 0
        self._count_lock = threading.Lock()

    def load(self, progress: Callable[[float, str], None]) -> Ready:
        if self.hang == "load":
            threading.Event().wait()
        steps = 4
        for step in range(steps):
            progress(step / steps, "loading")
            time.sleep(self.load_delay / steps)
        if self.fail_load:
            raise RuntimeError("fake load failure")
        return Ready(model=self.model, n_ctx=self.n_ctx, chat_template=True)

    def generate(self, job: Job) -> tuple[FinishReason, Usage]:
        request = job.request
        if request.messages is not None:
            prompt_text = " ".join(m.content for m in request.messages)
        else:
            prompt_text = request.prompt or ""
        prompt_tokens = len(prompt_text.split())
        if prompt_tokens > self.n_ctx:
            raise RequestFailed(
                "context_length_exceeded",
                f"prompt has {prompt_tokens} tokens; the context holds {self.n_ctx}",
            )
        if self.crash_after == 0:
            os._exit(13)
        job.started(prompt_tokens)
        if self.hang == "generate":
            threading.Event().wait()
        limit = request.params.max_tokens
        produced = ""
        count = 0
        reason: FinishReason = "stop"
        # Going on with an answer "tok0 .. tokK": the reply carries on from tokK+1.
        first = 0
        if request.continue_final and request.messages:
            first = len(request.messages[-1].content.split())
        for index in range(first, self.reply_tokens):
            if job.cancelled.wait(1.0 / self.tokens_per_second if self.tokens_per_second else 0):
                return "cancelled", Usage(prompt_tokens=prompt_tokens, completion_tokens=count)
            if limit is not None and count >= limit:
                reason = "length"
                break
            piece = f"tok{index}" if index == 0 and not first else f" tok{index}"
            produced += piece
            count += 1
            found = [s for s in request.params.stop if s and s in produced]
            hit = min(found, key=produced.find) if found else None
            if hit is not None:
                # The piece holding the stop string is not sent; the choice's end says which.
                job.emit("", 1, finish_reason="stop", stop_sequence=hit)
                break
            job.emit(piece, 1)
            with self._count_lock:
                self._tokens_total += 1
                total = self._tokens_total
            if self.crash_after is not None and total >= self.crash_after:
                os._exit(13)
        return reason, Usage(prompt_tokens=prompt_tokens, completion_tokens=count)
