"""A real llama child on the tiny GGUF, driven over its pipe by the supervisor's ChildProcess."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

from corral.protocol.messages import Delta, Done, Error, FromChild, Generate, Ready, Started
from corral.supervisor.child_process import ChildCommand, ChildFailed, ChildProcess, RequestEvent
from tests.support.tiny_gguf import build_vocab

# The tiny vocabulary's special tokens; banned with logit_bias so that a random model runs to
# max_tokens instead of stopping wherever it happens to sample an end token.
_TOKENS = build_vocab()[0]
SPECIAL_IDS = [_TOKENS.index(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]
NO_END = {token: -100.0 for token in SPECIAL_IDS}


def llama_command(model: Path, *args: str) -> ChildCommand:
    argv = [sys.executable, "-m", "corral.child", "llama", "--model", str(model)]
    return ChildCommand([*argv, "--n-ctx", "512", "--n-threads", "1", *args], label="tiny")


def tap(child: ChildProcess) -> list[FromChild]:
    """Every frame the child sends, in pipe order (the readers of several requests wake in an
    order of asyncio's choosing, so their own logs cannot show how frames interleaved)."""
    frames: list[FromChild] = []
    dispatch = child._dispatch

    def record(frame: FromChild) -> None:
        frames.append(frame)
        dispatch(frame)

    child._dispatch = record  # type: ignore[method-assign]
    return frames


async def start_child(model: Path, *args: str) -> tuple[ChildProcess, Ready]:
    child = ChildProcess(llama_command(model, *args))
    ready = await child.start(hello_timeout=30, load_timeout=120)
    return child, ready


@dataclass
class Run:
    """Every frame of one request, in order; ``log`` is shared by runs to see interleaving."""

    request: Generate
    log: list[tuple[str, RequestEvent]]
    events: list[RequestEvent] = field(default_factory=list)
    first_delta: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, Delta))

    @property
    def delta_tokens(self) -> int:
        return sum(e.tokens for e in self.events if isinstance(e, Delta))

    @property
    def end(self) -> RequestEvent:
        return self.events[-1]

    @property
    def done(self) -> Done:
        assert isinstance(self.end, Done), self.end
        return self.end

    @property
    def started(self) -> Started:
        started = self.events[0]
        assert isinstance(started, Started), started
        return started

    async def drive(self, child: ChildProcess) -> Run:
        handle = await child.open_request(self.request)
        while True:
            event = await handle.next_event()
            self.events.append(event)
            self.log.append((self.request.request_id, event))
            if isinstance(event, Delta):
                self.first_delta.set()
            if isinstance(event, Done | Error | ChildFailed):
                return self
