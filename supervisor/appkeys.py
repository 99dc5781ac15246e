"""Typed keys for the objects that live on the application."""

from __future__ import annotations

import asyncio

from aiohttp import web

from corral.supervisor.analytics import AnalyticsWriter
from corral.supervisor.analytics_queries import AnalyticsQueries
from corral.supervisor.catalog import Catalog
from corral.supervisor.client_ip import ClientIPResolver
from corral.supervisor.credentials import Credentials, Principal
from corral.supervisor.downloads import DownloadManager
from corral.supervisor.geoip import GeoIP
from corral.supervisor.model_manager import ModelManager
from corral.supervisor.request_facts import RequestFacts
from corral.supervisor.resumable import Streams
from corral.supervisor.settings import LiveSettings
from corral.supervisor.store import Store

SETTINGS = web.AppKey("settings", LiveSettings)
CATALOG = web.AppKey("catalog", Catalog)
MANAGER = web.AppKey("manager", ModelManager)
STARTED_AT = web.AppKey("started_at", float)
STREAMS = web.AppKey("streams", Streams)
STORE = web.AppKey("store", Store)
CREDENTIALS = web.AppKey("credentials", Credentials)
CLIENT_IP = web.AppKey("client_ip", ClientIPResolver)
GEOIP = web.AppKey("geoip", GeoIP)
ANALYTICS = web.AppKey("analytics", AnalyticsWriter)
QUERIES = web.AppKey("queries", AnalyticsQueries)
DOWNLOADS = web.AppKey("downloads", DownloadManager)
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)  # ends long-lived event streams

# Per request
FACTS = web.RequestKey("facts", RequestFacts)
PRINCIPAL = web.RequestKey("principal", Principal)
