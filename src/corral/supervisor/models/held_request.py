"""One request open in a leased model child: the lease, the child and the request's handle.

Generations, speech jobs and embed/rerank calls all hold one; a call split into several child
requests (a large embed) opens them one after another on the same lease with ``reopen``.
``close`` gives the model back before its first await, so a close that is itself cancelled
still leaves the model released and the request off the shutdown drain's list; then it
cancels the request in the child if it still runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from corral.protocol.messages import Embed, Generate, Rerank
from corral.protocol.speech import Speak, Transcribe
from corral.supervisor.child_process import ChildFailed, ChildProcess, RequestHandle
from corral.supervisor.models.drain import Interruptible
from corral.supervisor.models.manager import ModelManager

ChildRequest = Generate | Transcribe | Speak | Embed | Rerank


@dataclass(eq=False)
class HeldRequest:
    child: ChildProcess
    handle: RequestHandle
    _lease: contextlib.AsyncExitStack

    @classmethod
    async def open(
        cls,
        manager: ModelManager,
        model_id: str,
        message: ChildRequest,
        *,
        keep_alive: float | None = None,
        holder: Interruptible | None = None,
    ) -> HeldRequest:
        """Lease ``model_id`` (loading it on demand) and open ``message`` in its child."""
        stack = contextlib.AsyncExitStack()
        try:
            lease = await stack.enter_async_context(
                manager.lease(model_id, keep_alive, holder=holder)
            )
            handle = await lease.child.open_request(message)
        except BaseException:
            await stack.aclose()
            raise
        return cls(lease.child, handle, stack)

    async def reopen(self, message: ChildRequest) -> RequestHandle:
        """The next request of the same call, on the same lease (the previous one ended)."""
        await self.interrupt()
        self.handle = await self.child.open_request(message)
        return self.handle

    async def close(self) -> None:
        """Give the model back, then cancel in the child if still running. Idempotent."""
        await self._lease.aclose()  # no await before the release inside
        await self.interrupt()

    async def interrupt(self) -> None:
        """Ask the child to stop the request early; its stream still ends normally."""
        if not self.handle.finished:
            with contextlib.suppress(ChildFailed):
                await self.handle.cancel()
