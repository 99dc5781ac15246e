"""Typed keys for the objects that live on the application."""

from __future__ import annotations

from aiohttp import web

from corral.supervisor.catalog import Catalog
from corral.supervisor.model_manager import ModelManager
from corral.supervisor.resumable import Streams
from corral.supervisor.settings import LiveSettings

SETTINGS = web.AppKey("settings", LiveSettings)
CATALOG = web.AppKey("catalog", Catalog)
MANAGER = web.AppKey("manager", ModelManager)
STARTED_AT = web.AppKey("started_at", float)
STREAMS = web.AppKey("streams", Streams)
