"""Web UI sign-in: ``/api/login``, ``/api/logout``, ``/api/me`` and the UI's settings."""

from __future__ import annotations

import asyncio
import math

from aiohttp import web
from pydantic import BaseModel, Field

from corral.supervisor.appkeys import CATALOG, CREDENTIALS, FACTS, PRINCIPAL, SECURITY, SETTINGS
from corral.supervisor.auth.login_limits import LoginRateLimited
from corral.supervisor.auth.policy import presented_secret
from corral.supervisor.daemon.version import corral_version
from corral.supervisor.errors import TooManyRequests, Unauthorized
from corral.supervisor.http.json_body import read_body


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


async def login(request: web.Request) -> web.Response:
    body = await read_body(request, LoginRequest)
    credentials = request.app[CREDENTIALS]
    client_ip = request[FACTS].client_ip
    try:
        session = await asyncio.to_thread(
            credentials.login, body.username, body.password, client_ip
        )
    except LoginRateLimited as exc:
        raise TooManyRequests(
            "too many failed sign-ins; try again later",
            code="login_rate_limited",
            headers={"Retry-After": str(math.ceil(exc.retry_after))},
        ) from None
    if session is None:
        raise Unauthorized("wrong user name or password", code="invalid_credentials")
    principal = session.principal
    return web.json_response(
        {
            "token": session.token,
            "expires_at": session.expires_at,
            "user": {"name": principal.name, "admin": principal.admin},
        }
    )


async def logout(request: web.Request) -> web.Response:
    secret = presented_secret(request)
    if secret is not None:
        await asyncio.to_thread(request.app[CREDENTIALS].logout, secret)
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    name = "local" if principal.kind == "anonymous" else principal.name
    return web.json_response({"name": name, "admin": principal.admin})


async def ui_config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].current
    return web.json_response(
        {
            "version": corral_version(),
            "auth_required": request.app[SECURITY].auth_configured(),
            "default_model": request.app[CATALOG].default_model,
            "modes": {k: v.model_dump() for k, v in settings.ui_modes.items()},
            "defaults": settings.ui_defaults.model_dump(),
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/ui-config", ui_config)
