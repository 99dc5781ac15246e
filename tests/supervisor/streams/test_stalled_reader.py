"""Medium 9: a client that stops reading costs bounded memory, and nothing once it leaves."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from corral.protocol.messages import Delta, Done, Error, Usage
from corral.supervisor.app import create_app
from corral.supervisor.appkeys import MANAGER
from corral.supervisor.request_events import RequestEvents
from tests.support.inproc import SERVER, eventually, inproc_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def test_unread_deltas_are_merged_into_one_piece_of_text() -> None:
    events = RequestEvents()
    for i in range(100_000):
        assert events.put(Delta(request_id="r", text=f" t{i}", tokens=1))
    events.put(
        Done(
            request_id="r", finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=1)
        )
    )
    assert len(events._items) == 2  # one pending text and the Done, not 100,001 objects
    merged = await events.get()
    assert isinstance(merged, Delta)
    assert merged.tokens == 100_000
    assert merged.text == "".join(f" t{i}" for i in range(100_000))
    assert isinstance(await events.get(), Done)


async def test_a_merged_choice_keeps_how_it_ended_and_its_stop_string() -> None:
    events = RequestEvents()
    events.put(Delta(request_id="r", text="one", tokens=1))
    events.put(Delta(request_id="r", text=" two", tokens=1))
    events.put(Delta(request_id="r", text="", tokens=1, finish_reason="stop", stop_sequence="END"))
    events.put(Delta(request_id="r", text="x", tokens=1, index=1, finish_reason="length"))
    merged, other = await events.get(), await events.get()
    assert isinstance(merged, Delta)
    assert isinstance(other, Delta)
    assert (merged.text, merged.tokens, merged.finish_reason) == ("one two", 3, "stop")
    assert merged.stop_sequence == "END"
    assert (other.index, other.finish_reason, other.stop_sequence) == (1, "length", None)


async def test_a_reader_stalled_past_the_limit_gets_an_error_and_later_frames_are_dropped() -> None:
    events = RequestEvents(max_pending_chars=100)
    assert events.put(Delta(request_id="r", text="x" * 60, tokens=1))
    assert not events.put(Delta(request_id="r", text="x" * 60, tokens=1))
    assert not events.put(
        Done(
            request_id="r", finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=1)
        )
    )
    error = await events.get()
    assert isinstance(error, Error)
    assert error.code == "client_too_slow"
    assert not events._items


async def test_a_client_that_does_not_read_holds_one_pending_text_and_frees_it_on_leaving(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    # A small receive window, so the kernel's buffers do not soak up the stall.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.server.host, client.server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    body = (
        b'{"model": "fake-long", "stream": true, "messages": [{"role": "user", "content": "go"}]}'
    )
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    manager = client.app[MANAGER]
    await eventually(lambda: "fake-long" in manager.children(), seconds=30)
    child = manager.children()["fake-long"]
    await eventually(lambda: child.open_requests == 1, seconds=30)
    (handle,) = child._requests.values()
    # The socket buffers fill, the handler stops taking frames, and text piles up unread.
    await eventually(lambda: handle._queue._pending_chars > 50_000, seconds=120)
    assert len(handle._queue._items) <= 2
    writer.close()  # the client leaves: the request ends in the child and is forgotten
    del reader
    await eventually(lambda: child.open_requests == 0, seconds=30)
    view = manager.views["fake-long"]
    await eventually(lambda: view.in_flight == 0)
