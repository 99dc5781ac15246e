"""One generation from request to finish: lease a model, open the request, read its frames.

``start()`` returns once the child has accepted the request (its ``started`` frame), so a
prompt that is too long, a model that cannot load or a crash during load is still an HTTP
error; after that, failures surface from ``deltas()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from corral.protocol.messages import Delta, Done, Error, Generate, Started
from corral.supervisor.child_process import ChildFailed, ChildProcess, RequestEvent
from corral.supervisor.errors import BadGateway, BadRequest, CorralError, GatewayTimeout
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.held_request import HeldRequest
from corral.supervisor.models.manager import ModelManager

# upstream_bad_request: a remote model's upstream refused a parameter (its 400, named).
_CLIENT_ERRORS = {
    "context_length_exceeded",
    "invalid_messages",
    "invalid_request",
    "upstream_bad_request",
}


def _error_from_child(frame: Error) -> CorralError:
    if frame.code in _CLIENT_ERRORS or (frame.code == "unsupported" and frame.param):
        return BadRequest(frame.message, code=frame.code, param=frame.param or "messages")
    return BadGateway(frame.message, code=frame.code)


@dataclass(eq=False)  # tracked in sets by identity
class Generation:
    manager: ModelManager
    entry: ModelEntry
    request: Generate
    keep_alive: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started_at: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    finished_at: float | None = None
    done: Done | None = None
    _held: HeldRequest | None = None
    _child: ChildProcess | None = None  # kept after close, for a late stall report

    @property
    def request_id(self) -> str:
        return self.request.request_id

    async def start(self) -> None:
        try:
            self._held = held = await HeldRequest.open(
                self.manager, self.entry.id, self.request, keep_alive=self.keep_alive, holder=self
            )
            self._child = held.child
            first_token, _ = self._timeouts()
            try:
                async with asyncio.timeout(first_token):
                    event = await held.handle.next_event()
            except TimeoutError:
                raise self._stalled(first_token) from None
            if not isinstance(event, Started):
                raise self._failure(event)
            self.prompt_tokens = event.prompt_tokens
        except BaseException:
            await self.close()
            raise

    async def deltas(self, ping_interval: float | None = None) -> AsyncIterator[Delta | None]:
        """Yield each delta, or ``None`` after ``ping_interval`` seconds without one."""
        assert self._held is not None, "start() first"
        handle = self._held.handle
        first_token, stall = self._timeouts()
        deadline = self.started_at + first_token
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise self._stalled(first_token if self.first_token_at is None else stall)
            wait = deadline - now if ping_interval is None else min(ping_interval, deadline - now)
            try:
                # asyncio.timeout, not wait_for: wait_for wraps every token in a new task.
                async with asyncio.timeout(wait):
                    event = await handle.next_event()
            except TimeoutError:
                if time.monotonic() < deadline:
                    yield None
                continue
            deadline = time.monotonic() + stall
            if isinstance(event, Delta):
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                self.completion_tokens += event.tokens
                yield event
            elif isinstance(event, Done):
                self.done = event
                self.finished_at = time.monotonic()
                self.completion_tokens = event.usage.completion_tokens
                # A remote upstream counts the prompt only in its final usage.
                self.prompt_tokens = event.usage.prompt_tokens or self.prompt_tokens
                await self.close()
                return
            else:
                await self.close()
                raise self._failure(event)

    def _timeouts(self) -> tuple[float, float]:
        """Seconds to the first token, and between two tokens, before the child counts as stuck."""
        preset, settings = self.entry.preset, self.manager.settings
        return (
            preset.first_token_timeout or settings.first_token_timeout,
            preset.stall_timeout or settings.stall_timeout,
        )

    def _stalled(self, waited: float) -> GatewayTimeout:
        """The child went silent: kill it (its model shows failed), end this request."""
        what = "first token" if self.first_token_at is None else "next token"
        reason = f"no {what} for {waited:g} s; the model process stopped answering"
        if self._child is not None:
            self.manager.kill_stuck(self.entry.id, self._child, reason)
        return GatewayTimeout(reason)

    def _failure(self, event: RequestEvent) -> CorralError:
        if isinstance(event, Error):
            return _error_from_child(event)
        if isinstance(event, ChildFailed):
            return event
        return BadGateway(f"unexpected {event.type} frame before the request started")

    async def close(self) -> None:
        """Give the model back and cancel in the child if still running. Idempotent."""
        held, self._held = self._held, None
        if held is not None:
            await held.close()

    async def interrupt(self) -> None:
        """Ask the child to stop early; the stream still ends normally (shutdown drain)."""
        if self._held is not None:
            await self._held.interrupt()

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started_at
