"""``create_app(settings)``: the middleware chain, the services (`services.py`) and the routes."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from corral.supervisor import services
from corral.supervisor.analytics import routes as analytics_routes
from corral.supervisor.analytics.metrics import Metrics, metrics_route
from corral.supervisor.anthropic import routes as anthropic_routes
from corral.supervisor.anthropic.errors import anthropic_errors_middleware
from corral.supervisor.appkeys import CLIENT_IP, METRICS, RELOADER, SETTINGS, STARTED_AT
from corral.supervisor.audio import routes as audio_routes
from corral.supervisor.auth import routes as auth_routes
from corral.supervisor.auth.policy import auth_middleware
from corral.supervisor.conversations import routes as conversation_routes
from corral.supervisor.http import routes as server_routes
from corral.supervisor.http import static_ui as webui
from corral.supervisor.http.client_address import ClientIPResolver
from corral.supervisor.http.cors import add_cors_headers, cors_middleware
from corral.supervisor.http.errors import errors_middleware
from corral.supervisor.http.origin import origin_middleware
from corral.supervisor.http.request_log import request_log_middleware
from corral.supervisor.models import routes as admin_routes
from corral.supervisor.ollama import routes as ollama_routes
from corral.supervisor.openai import embeddings as embedding_routes
from corral.supervisor.openai import routes as openai_routes
from corral.supervisor.reloading import Reloader
from corral.supervisor.responses import routes as responses_routes
from corral.supervisor.settings import LiveSettings, Settings
from corral.supervisor.streams import routes as stream_routes


def create_app(settings: Settings) -> web.Application:
    # Outermost first: the request log sees the final status of everything, errors included;
    # errors render what the origin check and auth raise.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_log_middleware,
            cors_middleware,  # outside errors: error responses carry CORS headers too
            errors_middleware,
            anthropic_errors_middleware,  # Anthropic's error shape on its own routes
            origin_middleware,  # before auth: a forged request is refused whoever it claims
            auth_middleware,
        ],
    )
    app.on_response_prepare.append(add_cors_headers)
    live = LiveSettings(settings)
    app[SETTINGS] = live
    app[RELOADER] = reloader = Reloader(live)
    app[STARTED_AT] = time.monotonic()
    app[CLIENT_IP] = client_ip = ClientIPResolver(settings.trusted_proxies)
    reloader.on(["trusted_proxies"], lambda s: client_ip.trust(s.trusted_proxies))
    reloader.on(["log_level"], lambda s: logging.getLogger().setLevel(s.log_level))
    metrics = Metrics()
    app[METRICS] = metrics
    metrics.watch_app(app)
    services.install(app)
    openai_routes.setup(app)
    embedding_routes.setup(app)
    anthropic_routes.setup(app)
    responses_routes.setup(app)
    ollama_routes.setup(app)
    audio_routes.setup(app)
    stream_routes.setup(app)
    auth_routes.setup(app)
    conversation_routes.setup(app)
    analytics_routes.setup(app)
    server_routes.setup(app)
    admin_routes.setup(app)
    app.router.add_get("/metrics", metrics_route)
    webui.setup(app)
    return app
