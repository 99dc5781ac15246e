"""The events of one streamed chat completion, parsed, for the benchmarks that time them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


def stream_events(client: httpx.Client, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """POST ``body`` to ``/v1/chat/completions`` and yield each SSE event's JSON, in order."""
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                yield json.loads(line[6:])
