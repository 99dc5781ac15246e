"""Raw HTTP/1.1 over a socket, for bytes no HTTP client library will send (``\\xff`` in a header)."""

from __future__ import annotations

import asyncio


async def raw_request(host: str, port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, no blank line) and ``body``; the status and the
    whole response. ``Connection: close`` is added so the server ends the response."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head.rstrip(b"\r\n") + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(30):
            response = await reader.read(-1)
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, response
