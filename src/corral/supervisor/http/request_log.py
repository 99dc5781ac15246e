"""One analytics row and one set of metrics per HTTP request.

The outermost middleware resolves the client address (trusting ``X-Forwarded-For`` only from
configured proxies), lets handlers fill in what they learn (model, tokens, time to first
token) on a ``RequestFacts``, and records the row when the response is done. Recording never
waits on the disk: the writer's queue is bounded and drops (and counts) rows when full.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from corral.supervisor.analytics.writer import AnalyticsRow
from corral.supervisor.appkeys import ANALYTICS, CLIENT_IP, FACTS, METRICS, PRINCIPAL
from corral.supervisor.http.headers import header, header_values
from corral.supervisor.http.request_facts import RequestFacts

CLIENT_CLOSED = 499
_ROUTE_GROUPS = (
    ("/v1/stream", "streams"),
    ("/v1/", "openai"),
    ("/admin/analytics", "dashboard"),
    ("/admin/", "admin"),
    ("/api/login", "auth"),
    ("/api/logout", "auth"),
    ("/api/", "ui"),
    ("/health", "health"),
    ("/metrics", "metrics"),
)


def route_group(path: str) -> str:
    for prefix, group in _ROUTE_GROUPS:
        if path.startswith(prefix):
            return group
    return "static"


def route_action(request: web.Request) -> str:
    """The matched route as a stable name: ``POST /v1/chat/completions`` -> ``chat.completions``."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else "unmatched"
    for prefix in ("/v1/", "/admin/", "/api/", "/"):
        if canonical.startswith(prefix):
            canonical = canonical[len(prefix) :]
            break
    return (canonical.replace("/", ".").replace("{", "").replace("}", "") or "index")[:64]


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    forwarded = header_values(request, "X-Forwarded-For")
    facts = RequestFacts(client_ip=request.app[CLIENT_IP].resolve(request.remote, forwarded))
    request[FACTS] = facts
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if facts.client_closed:
            status = CLIENT_CLOSED  # a stream the client left: its body never arrived whole
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        # The client went away (a closed tab, an aborted SDK call) and its handler was
        # cancelled: nginx's 499 "client closed", not one of our errors.
        status = CLIENT_CLOSED
        raise
    finally:
        latency = time.perf_counter() - started
        group = route_group(request.path)
        action = route_action(request)
        principal = request.get(PRINCIPAL)
        request.app[METRICS].observe_request(group, action, status, latency, facts)
        writer = request.app.get(ANALYTICS)
        if writer is not None:
            writer.record(
                AnalyticsRow(
                    ts=time.time(),
                    method=request.method,
                    path=request.path,  # never the query string: it can carry secrets
                    status=status,
                    latency_ms=round(latency * 1000, 3),
                    principal=principal.name if principal is not None else None,
                    route_group=group,
                    action=action,
                    client_ip=facts.client_ip,
                    user_agent=header(request, "User-Agent"),
                    model=facts.model,
                    prompt_tokens=facts.prompt_tokens,
                    completion_tokens=facts.completion_tokens,
                    ttft_ms=facts.ttft_ms,
                    tokens_per_second=facts.tokens_per_second,
                    conversation_id=facts.conversation_id,
                    audio_seconds_in=facts.audio_seconds_in,
                    audio_seconds_out=facts.audio_seconds_out,
                )
            )
