"""One speech request in a child: lease the model, open the request, read its frames.

``start()`` returns the child's first frame once it accepted the request, so a file that is
not audio or an unknown voice is still an HTTP 400, and a model that cannot load a 502/503;
after that, failures surface from ``events()``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from corral.protocol.messages import Done, Error
from corral.protocol.speech import Speak, Transcribe
from corral.supervisor.child_process import ChildFailed, RequestEvent, RequestHandle, SpeechEvent
from corral.supervisor.errors import BadGateway, BadRequest, CorralError
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.manager import ModelManager

# child error code -> the request field it is about
_CLIENT_ERRORS = {
    "invalid_audio": "file",
    "unsupported_language": "language",
    "invalid_voice": "voice",
    "invalid_request": None,
}


def failure(event: RequestEvent) -> CorralError:
    if isinstance(event, Error):
        if event.code in _CLIENT_ERRORS:
            return BadRequest(event.message, code=event.code, param=_CLIENT_ERRORS[event.code])
        return BadGateway(event.message, code=event.code)
    if isinstance(event, ChildFailed):
        return event
    return BadGateway(f"unexpected {event.type} frame from the model process")


@dataclass(eq=False)  # tracked in the manager's set by identity
class AudioJob:
    manager: ModelManager
    entry: ModelEntry
    request: Transcribe | Speak
    started_at: float = field(default_factory=time.monotonic)
    first_event_at: float | None = None
    done: Done | None = None
    _lease: contextlib.AsyncExitStack | None = None
    _handle: RequestHandle | None = None

    async def start(self) -> SpeechEvent:
        try:
            self._lease = contextlib.AsyncExitStack()
            lease = await self._lease.enter_async_context(
                self.manager.lease(self.entry.id, holder=self)
            )
            self._handle = await lease.child.open_request(self.request)
            event = await self._handle.next_event()
            if not isinstance(event, SpeechEvent):
                raise failure(event)
            self.first_event_at = time.monotonic()
            return event
        except BaseException:
            await self.close()
            raise

    async def events(self) -> AsyncIterator[SpeechEvent]:
        """The frames after the first, until ``done`` (then ``self.done`` is set)."""
        handle = self._handle
        assert handle is not None, "start() first"
        while True:
            event = await handle.next_event()
            if isinstance(event, Done):
                self.done = event
                await self.close()
                return
            if not isinstance(event, SpeechEvent):
                await self.close()
                raise failure(event)
            yield event

    async def close(self) -> None:
        """Cancel in the child if still running and give the model back. Idempotent; the
        bookkeeping comes before any await, as in ``Generation.close``."""
        handle, self._handle = self._handle, None
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.aclose()  # gives the model back before its first await
        if handle is not None and not handle.finished:
            with contextlib.suppress(ChildFailed):
                await handle.cancel()

    async def interrupt(self) -> None:
        """The shutdown drain's stop: cancel in the child; the response still ends."""
        handle = self._handle
        if handle is not None and not handle.finished:
            with contextlib.suppress(ChildFailed):
                await handle.cancel()
