"""The one middleware that renders every failure as an OpenAI error body."""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from corral.supervisor.errors import (
    BadRequest,
    CorralError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)

log = logging.getLogger("corral.api")


def error_response(exc: CorralError) -> web.Response:
    headers = dict(exc.headers)
    if exc.status == 429:
        headers.setdefault("Retry-After", "1")  # a client told to slow down is told how long
    return web.json_response(exc.body(), status=exc.status, headers=headers)


def _from_http(exc: web.HTTPException) -> CorralError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(f"the request body is larger than the limit: {exc.text}")
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("no such route")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"{exc.method} is not allowed here")
    error = CorralError(exc.reason, code=None)
    error.status = exc.status
    error.type = "invalid_request_error" if exc.status < 500 else "server_error"
    return error


def _malformed_body(request: web.Request, exc: Exception) -> web.Response:
    """A body the HTTP parser refused (a bad chunk size, a broken compressed stream): the
    client's fault, one line at info level; the connection's framing is lost, so it closes."""
    reason = " ".join(str(getattr(exc, "message", exc)).split())[:200]
    log.info("malformed request body on %s %s: %s", request.method, request.path, reason)
    # Marked read to its end, or aiohttp would try to drain the rest of the broken body
    # after the response and log the same error again with a traceback.
    request.content.feed_eof()
    response = error_response(
        BadRequest(f"malformed HTTP request body: {reason}", code="malformed_http")
    )
    response.force_close()
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CorralError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http(exc))
    except UnicodeDecodeError:
        return error_response(BadRequest("the body is not valid UTF-8", code="invalid_json"))
    except (web.RequestPayloadError, HttpProcessingError) as exc:
        return _malformed_body(request, exc)
    except ConnectionResetError:
        raise  # the client left; nothing to render
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            log.exception("database error on %s %s", request.method, request.path)
            return error_response(CorralError("internal server error"))
        # Another process (a backup, `corral keys`) holds the write lock past the busy timeout.
        log.warning("database busy on %s %s: %s", request.method, request.path, exc)
        return error_response(
            ServiceUnavailable(
                "the database is busy; try again shortly",
                code="database_busy",
                headers={"Retry-After": "2"},
            )
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(CorralError("internal server error"))
