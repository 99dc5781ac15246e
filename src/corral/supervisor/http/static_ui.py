"""Serves the bundled web UI: hashed assets cached for a year, ``index.html`` never cached.

The built single-page app lives in ``webui_dist/`` inside the package (built from ``webui/``
by ``make webui``). Without a build, a small placeholder page says how to make one.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

DIST = Path(__file__).parent.parent / "webui_dist"
_PLACEHOLDER = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Corral</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>Corral</h1><p>The API is up at <code>/v1</code>. The web UI has not been built:
run <code>make webui</code> (or <code>make serve</code>, which builds it when missing).</p>
</body></html>"""
_NO_CACHE = {"Cache-Control": "no-cache"}
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


async def index(request: web.Request) -> web.StreamResponse:
    page = DIST / "index.html"
    if page.is_file():
        return web.FileResponse(page, headers=_NO_CACHE)
    return web.Response(text=_PLACEHOLDER, content_type="text/html", headers=_NO_CACHE)


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    root = (DIST / "assets").resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=_IMMUTABLE)


async def public_file(request: web.Request) -> web.StreamResponse:
    """Un-hashed files at the top of the build (favicon and the like)."""
    path = DIST / request.match_info["name"]
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=_NO_CACHE)


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/assets/{name:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*}", asset)
    app.router.add_get("/{name:[A-Za-z0-9_-]+\\.(?:ico|png|svg|webmanifest|txt)}", public_file)
