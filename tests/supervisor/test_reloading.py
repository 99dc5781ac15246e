"""Reloading settings: what each service applies, and what waits for a restart, in process."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from corral.supervisor.app import create_app
from corral.supervisor.appkeys import ANALYTICS, CREDENTIALS, RELOADER, STREAMS
from corral.supervisor.reloading import READ_PER_REQUEST
from corral.supervisor.settings import Settings, load_settings

SRC = Path(__file__).resolve().parents[2] / "src" / "corral"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(None, data_dir=tmp_path / "data", demo_model=False, **overrides)


async def test_restart_only_settings_are_derived_from_what_services_apply(
    tmp_path: Path, aiohttp_client: type[TestClient] | object
) -> None:
    client = await aiohttp_client(create_app(_settings(tmp_path)))  # type: ignore[operator]
    reloader = client.app[RELOADER]
    assert reloader.restart_only == {
        "host",
        "port",
        "data_dir",
        "models_dir",
        "database_path",
        "max_body_bytes",
        "memory_budget_share",
        "preload",
        "insecure_no_auth",
        "http_idle_timeout",
    }


async def test_a_reload_applies_what_was_captured_at_start(
    tmp_path: Path, aiohttp_client: type[TestClient] | object, caplog: pytest.LogCaptureFixture
) -> None:
    """These were read once at start and a reload silently ignored them."""
    client = await aiohttp_client(create_app(_settings(tmp_path)))  # type: ignore[operator]
    app = client.app
    fresh = _settings(
        tmp_path,
        stream_buffer_bytes=8192,
        stream_total_bytes=65536,
        stream_ttl=7.0,
        analytics=False,
        analytics_queue_size=3,
        session_lifetime=60.0,
        login_max_failures_per_user=2,
        port=9999,
    )
    with caplog.at_level(logging.WARNING, logger="corral.server"):
        pending = app[RELOADER].reload(fresh)
    registry = app[STREAMS].registry
    assert (registry.ring_capacity, registry.total_capacity, registry.ttl) == (8192, 65536, 7.0)
    writer = app[ANALYTICS]
    assert (writer.enabled, writer.max_queue) == (False, 3)
    credentials = app[CREDENTIALS]
    assert credentials.session_ttl_s == 60.0
    assert credentials.limiter._free["user"] == 2
    # A restart-only change is kept at its old value, with a warning naming it.
    assert pending == ["port"]
    assert app[RELOADER].live.current.port == 8080
    assert "port changed; it takes effect after a restart" in caplog.text


async def test_analytics_off_records_nothing(
    tmp_path: Path, aiohttp_client: type[TestClient] | object
) -> None:
    client = await aiohttp_client(  # type: ignore[operator]
        create_app(_settings(tmp_path, analytics=False))
    )
    await client.get("/health")
    assert client.app[ANALYTICS].queue_depth == 0


def _read_from_current(tree: ast.AST) -> set[str]:
    """Fields read as ``<...>.current.field``, or as ``name.field`` in a function that set
    ``name = <...>.current``."""
    found: set[str] = set()
    reads_current = any(
        isinstance(node, ast.Attribute) and node.attr == "current" for node in ast.walk(tree)
    )
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        aliases = {
            target.id
            for node in ast.walk(func)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "current"
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        if reads_current:  # helpers handed the current settings by a handler of this module
            aliases |= {
                arg.arg
                for arg in func.args.args
                if isinstance(arg.annotation, ast.Name) and arg.annotation.id == "Settings"
            }
        for node in ast.walk(func):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            if (isinstance(base, ast.Attribute) and base.attr == "current") or (
                isinstance(base, ast.Name) and base.id in aliases
            ):
                found.add(node.attr)
    return found


def test_every_setting_read_per_request_is_read_so() -> None:
    """A field in READ_PER_REQUEST must be read from ``LiveSettings.current`` where it is used,
    or a reload would not reach it."""
    found: set[str] = set()
    for path in (SRC / "supervisor").rglob("*.py"):
        found |= _read_from_current(ast.parse(path.read_text()))
    assert found >= READ_PER_REQUEST


@pytest.mark.parametrize(
    "sampling",
    [{"temperature": 5}, {"top_p": 1.5}, {"top_k": -1}, {"max_tokens": 0}, {"min_p": -0.1}],
)
def test_a_preset_outside_the_sampling_bounds_is_refused_at_load(
    tmp_path: Path, sampling: dict[str, float]
) -> None:
    """It used to load fine and then make every request to that model a 500."""
    with pytest.raises(ValidationError):
        _settings(tmp_path, models={"m": {"backend": "fake", "sampling": sampling}})


def test_stream_limits_must_fit_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="stream_total_bytes"):
        _settings(tmp_path, stream_buffer_bytes=65536, stream_total_bytes=8192)
