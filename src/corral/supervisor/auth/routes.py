"""Web UI sign-in: ``/api/login``, ``/api/logout``, ``/api/me`` and the UI's settings."""

from __future__ import annotations

import asyncio
import math

from aiohttp import web
from pydantic import BaseModel, Field

from corral.protocol.messages import MaxTokens, Probability, Temperature, bounds_of
from corral.supervisor.appkeys import CATALOG, CREDENTIALS, FACTS, PRINCIPAL, SECURITY, SETTINGS
from corral.supervisor.auth.login_limits import LoginRateLimited
from corral.supervisor.auth.policy import presented_secret
from corral.supervisor.daemon.version import corral_version
from corral.supervisor.errors import TooManyRequests, Unauthorized
from corral.supervisor.http.json_body import read_body


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


UI_SAMPLING_BOUNDS = {
    "temperature": bounds_of(Temperature),
    "top_p": bounds_of(Probability),
    "max_tokens": bounds_of(MaxTokens),
}


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
    auth_required = request.app[SECURITY].auth_configured()
    # With keys but no accounts the sign-in form can never succeed: the UI says what to do.
    accounts = bool(await asyncio.to_thread(request.app[CREDENTIALS].list_users))
    return web.json_response(
        {
            "version": corral_version(),
            "auth_required": auth_required,
            "accounts": accounts,
            "default_model": request.app[CATALOG].default_model,
            "modes": {k: v.model_dump() for k, v in settings.ui_modes.items()},
            "defaults": settings.ui_defaults.model_dump(),
            "bounds": UI_SAMPLING_BOUNDS,  # the protocol's, so the UI cannot offer a 400
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/ui-config", ui_config)
