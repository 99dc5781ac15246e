"""Typed keys for the objects that live on the application.

Every module reaches the app's services through these keys, so this module imports their types
for the type checker only: it can never be part of an import cycle.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from corral.supervisor.analytics.geoip import GeoIP
    from corral.supervisor.analytics.metrics import Metrics
    from corral.supervisor.analytics.queries import AnalyticsQueries
    from corral.supervisor.analytics.writer import AnalyticsWriter
    from corral.supervisor.auth.credentials import Credentials
    from corral.supervisor.auth.identity import Principal
    from corral.supervisor.auth.policy import Security
    from corral.supervisor.conversations.store import Conversations
    from corral.supervisor.http.client_address import ClientIPResolver
    from corral.supervisor.http.request_facts import RequestFacts
    from corral.supervisor.hub.downloads import DownloadManager
    from corral.supervisor.models.catalog import Catalog
    from corral.supervisor.models.manager import ModelManager
    from corral.supervisor.reloading import Reloader
    from corral.supervisor.settings import LiveSettings
    from corral.supervisor.store import Store
    from corral.supervisor.streams.resumable import Streams

SETTINGS: web.AppKey[LiveSettings] = web.AppKey("settings")
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog")
MANAGER: web.AppKey[ModelManager] = web.AppKey("manager")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at")
STREAMS: web.AppKey[Streams] = web.AppKey("streams")
STORE: web.AppKey[Store] = web.AppKey("store")
CREDENTIALS: web.AppKey[Credentials] = web.AppKey("credentials")
CLIENT_IP: web.AppKey[ClientIPResolver] = web.AppKey("client_ip")
GEOIP: web.AppKey[GeoIP] = web.AppKey("geoip")
ANALYTICS: web.AppKey[AnalyticsWriter] = web.AppKey("analytics")
QUERIES: web.AppKey[AnalyticsQueries] = web.AppKey("queries")
DOWNLOADS: web.AppKey[DownloadManager] = web.AppKey("downloads")
SECURITY: web.AppKey[Security] = web.AppKey("security")
CONVERSATIONS: web.AppKey[Conversations] = web.AppKey("conversations")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
RELOADER: web.AppKey[Reloader] = web.AppKey("reloader")
SHUTTING_DOWN: web.AppKey[asyncio.Event] = web.AppKey(
    "shutting_down"
)  # ends long-lived event streams

# Per request
FACTS: web.RequestKey[RequestFacts] = web.RequestKey("facts")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
