"""Malformed HTTP is the client's fault: an OpenAI-shaped 400 (431 for headers too large) and
one line at info level, not a plain-text body and an error-level traceback per request.

aiohttp answers a request it cannot parse (a broken request line, a bad header byte, an
oversized header, a bad chunk size in the same packet) before the app sees it, in its
connection handler's ``handle_error``, which no middleware reaches. ``ServingRunner`` is the
``web.AppRunner`` whose connections use ``ErrorRenderingHandler`` for that, so any scanner on
the network gets the same error shape as every other client and cannot flood the log.

aiohttp offers no public hook for the connection handler's class, so this leans on a few of
its internals (``AppRunner._make_server``, ``RequestHandler._current_request`` and
``_messages``, ``_ErrInfo``); ``tests/supervisor/http/test_malformed_http.py`` fails if an
aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from corral.supervisor.errors import BadRequest, CorralError, HeadersTooLarge
from corral.supervisor.http.errors import error_response

log = logging.getLogger("corral.http")

_MAX_REASON = 200


def malformed_request_error(exc: HttpProcessingError) -> CorralError:
    """The client-facing error for what the HTTP parser refused."""
    reason = " ".join(str(exc.message).split())[:_MAX_REASON]
    too_many = isinstance(exc, BadHttpMessage) and "too many" in reason.lower()
    if isinstance(exc, LineTooLong) or too_many:
        return HeadersTooLarge(f"the request line or headers are too large: {reason}")
    return BadRequest(f"malformed HTTP request: {reason}", code="malformed_http")


def log_malformed(error: CorralError, remote: str | None) -> None:
    log.info("malformed HTTP request from %s: %d %s", remote or "-", error.status, error.message)


class ErrorRenderingHandler(RequestHandler):
    """aiohttp's connection handler, but a parse error is rendered and logged as ours."""

    def data_received(self, data: bytes) -> None:
        request = self._current_request
        super().data_received(data)
        # aiohttp's C parser drops the body stream of the request in progress without an
        # error when the body turns out malformed (a bad chunk size after the headers came
        # in one packet before): its handler would wait for the body for ever. The error the
        # parser queued for the connection fails that stream instead (errors_middleware
        # renders it); a malformed request pipelined after a complete one is left queued.
        if request is None or not self._messages or request.content.is_eof():
            return
        failed = self._messages[-1][0]
        if isinstance(failed, _ErrInfo):
            request.content.set_exception(failed.exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or status >= 500:
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:  # as aiohttp: too late for another response
            raise ConnectionError("a response is already on its way")
        error = malformed_request_error(exc)
        log_malformed(error, request.remote)
        response = error_response(error)
        response.force_close()  # the parser's state is unknown; this connection is done
        return response


class _Server(web.Server):
    def __init__(
        self,
        handler: Any,
        *,
        request_factory: Any = None,
        handler_cancellation: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            request_factory=request_factory,
            handler_cancellation=handler_cancellation,
            loop=loop,
            **kwargs,
        )
        self._protocol_loop = loop or asyncio.get_running_loop()
        self._protocol_kwargs = kwargs

    def __call__(self) -> RequestHandler:
        return ErrorRenderingHandler(self, loop=self._protocol_loop, **self._protocol_kwargs)


class ServingRunner(web.AppRunner):
    """``web.AppRunner(app, **kwargs)`` whose connections render malformed requests as errors."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._protocol_kwargs = {
            k: v for k, v in kwargs.items() if k not in ("handle_signals", "shutdown_timeout")
        }

    async def _make_server(self) -> web.Server:
        # AppRunner's own server runs the app's startup; ours serves with the same handler.
        started = await super()._make_server()
        kwargs = dict(self._protocol_kwargs)
        return _Server(
            started.request_handler,
            request_factory=started.request_factory,
            handler_cancellation=kwargs.pop("handler_cancellation", False),
            **kwargs,
        )
