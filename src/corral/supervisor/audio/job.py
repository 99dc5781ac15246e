"""One speech request in a child: lease the model, open the request, read its frames.

``start()`` returns the child's first frame once it accepted the request, so a file that is
not audio or an unknown voice is still an HTTP 400, and a model that cannot load a 502/503;
after that, failures surface from ``events()``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from corral.protocol.messages import Done, Error
from corral.protocol.speech import Speak, Transcribe
from corral.supervisor.child_process import ChildFailed, RequestEvent, SpeechEvent
from corral.supervisor.errors import BadGateway, BadRequest, CorralError
from corral.supervisor.models.catalog import ModelEntry
from corral.supervisor.models.held_request import HeldRequest
from corral.supervisor.models.manager import ModelManager

# child error code -> the request field it is about
_CLIENT_ERRORS = {
    "invalid_audio": "file",
    "unsupported_language": "language",
    "invalid_voice": "voice",
    "invalid_language": "language",
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
    _held: HeldRequest | None = None

    async def start(self) -> SpeechEvent:
        try:
            self._held = held = await HeldRequest.open(
                self.manager, self.entry.id, self.request, holder=self
            )
            event = await held.handle.next_event()
            if not isinstance(event, SpeechEvent):
                raise failure(event)
            self.first_event_at = time.monotonic()
            return event
        except BaseException:
            await self.close()
            raise

    async def events(self) -> AsyncIterator[SpeechEvent]:
        """The frames after the first, until ``done`` (then ``self.done`` is set)."""
        assert self._held is not None, "start() first"
        handle = self._held.handle
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
        """Give the model back and cancel in the child if still running. Idempotent."""
        held, self._held = self._held, None
        if held is not None:
            await held.close()

    async def interrupt(self) -> None:
        """The shutdown drain's stop: cancel in the child; the response still ends."""
        if self._held is not None:
            await self._held.interrupt()
