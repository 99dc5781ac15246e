"""One error hierarchy for everything a client can be told.

Services raise these; one middleware renders them in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``. Anything else is a bug: a 500 with a
logged traceback, never a 4xx.
"""

from __future__ import annotations

from typing import Any


class CorralError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(CorralError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(CorralError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(CorralError):
    status = 403
    type = "permission_error"


class NotFound(CorralError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(CorralError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class Conflict(CorralError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(CorralError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(CorralError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RangeNotSatisfiable(CorralError):
    status = 416
    type = "invalid_request_error"
    code = "offset_out_of_range"


class TooManyRequests(CorralError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


class BadGateway(CorralError):
    """The model's child process failed or died while serving the request."""

    status = 502
    type = "server_error"
    code = "model_failed"


class GatewayTimeout(CorralError):
    """The model's child stopped answering (no first token, or a stall mid-stream)."""

    status = 504
    type = "server_error"
    code = "model_stalled"


class ServiceUnavailable(CorralError):
    status = 503
    type = "server_error"
    code = "unavailable"


class InsufficientStorage(CorralError):
    status = 507
    type = "server_error"
    code = "insufficient_storage"


class HeadersTooLarge(CorralError):
    """A request line, header or header count past what the HTTP parser takes."""

    status = 431
    type = "invalid_request_error"
    code = "headers_too_large"
