"""Two real supervisors behind one real Caddy (the shipped Caddyfile.fleet, `tls internal`).

Each resumable stream lives in the memory of the node that runs it; Caddy routes every
request about a conversation (the POST with ``X-Conversation-Id``, the re-attach by path as
the web UI sends it or by ``?conv_id=`` as llama-server clients do) to that node. Which node
owns a conversation is read from the nodes themselves (``/v1/streams/lookup`` on each, not
through Caddy), and the bytes a re-attach through Caddy replays must be the owner's. A
browser is pinned to one node by a cookie instead, since its session and stored conversations
are in that node's database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import SupervisorFactory
from tests.support.caddy import CADDYFILE_FLEET, Caddy, running_caddy
from tests.support.supervisor_proc import Supervisor

pytestmark = pytest.mark.e2e

# Slow enough that the first streams still run while the later ones start and re-attach.
PRESETS = """
[models.fake-fleet]
backend = "fake"
args = ["--tokens-per-second", "15", "--reply-tokens", "1000"]
"""
# Conversations started until each node owns this many (the hash decides which node).
PER_NODE = 3
MAX_CONVERSATIONS = 40


@dataclass
class Conversation:
    """A stream started through Caddy: its id, its own prompt length and reply length (so
    its bytes are told from every other's), and the bytes its POST read before dropping."""

    cid: str
    words: int
    tokens: int
    first: bytes = b""
    owner: int = -1  # index of the node whose registry holds it


def port_of(sup: Supervisor) -> int:
    return int(sup.base_url.rsplit(":", 1)[1])


@pytest.fixture
def fleet(
    supervisor: SupervisorFactory, tmp_path: Path
) -> Iterator[tuple[list[Supervisor], Caddy]]:
    nodes = [supervisor(PRESETS), supervisor(PRESETS)]
    workdir = tmp_path / "caddy"
    workdir.mkdir()
    with running_caddy(workdir, [port_of(n) for n in nodes], caddyfile=CADDYFILE_FLEET) as caddy:
        yield nodes, caddy


def https(caddy: Caddy) -> httpx.Client:
    return httpx.Client(base_url=caddy.base_url, verify=caddy.tls, timeout=60)


def chat(conv: Conversation) -> dict[str, object]:
    return {
        "model": "fake-fleet",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": conv.tokens,
        "messages": [{"role": "user", "content": " ".join(["word"] * conv.words)}],
    }


def start(client: httpx.Client, conv: Conversation) -> None:
    """POST through Caddy, read the first events, then drop the connection mid-answer."""
    headers = {"X-Conversation-Id": conv.cid}
    with client.stream("POST", "/v1/chat/completions", json=chat(conv), headers=headers) as r:
        assert r.status_code == 200, r.read()
        first = b""
        for chunk in r.iter_raw():
            first += chunk
            if first.count(b"\n\n") >= 2:
                break
    conv.first = first


def owners(nodes: list[Supervisor], cid: str) -> list[int]:
    """The nodes (by index) whose own registry has a stream for ``cid``, asked directly."""
    found = []
    for index, node in enumerate(nodes):
        if node.proc is None or node.proc.poll() is not None:
            continue
        with node.http() as direct:
            r = direct.post("/v1/streams/lookup", json={"conversation_ids": [cid]})
        assert r.status_code == 200, r.text
        if r.json()["data"]:
            found.append(index)
    return found


def reattach_path(cid: str) -> tuple[str, dict[str, str]]:
    # As the web UI sends it: the id only in the path, percent-encoded (`/` as %2F).
    return f"/v1/stream/{quote(cid, safe='')}", {}


def reattach_query(cid: str) -> tuple[str, dict[str, str]]:
    # As llama-server's clients send it: the id only in the query.
    return f"/v1/stream?conv_id={quote(cid, safe='')}", {}


def reattach_header(cid: str) -> tuple[str, dict[str, str]]:
    # A client that sends the header it started with on the re-attach too.
    return f"/v1/stream/{quote(cid, safe='')}", {"X-Conversation-Id": cid}


REATTACH = [reattach_path, reattach_query, reattach_header]


def replay(client: httpx.Client, cid: str, offset: int, way: int) -> bytes:
    url, headers = REATTACH[way % len(REATTACH)](cid)
    sep = "&" if "?" in url else "?"
    r = client.get(f"{url}{sep}from={offset}", headers=headers)
    assert r.status_code == 200, (cid, r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert "Content-Encoding" not in r.headers
    return r.content


def direct_replay(node: Supervisor, cid: str) -> httpx.Response:
    with node.http() as direct:
        return direct.get(f"/v1/stream/{quote(cid, safe='')}", params={"from": 0})


def check_bytes(body: bytes, conv: Conversation) -> None:
    """The body is this conversation's answer: its reply length and its prompt's usage."""
    assert body.endswith(b"data: [DONE]\n\n")
    events = [
        json.loads(line.removeprefix("data: "))
        for line in body.decode().splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    text = "".join(
        (e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices")
    )
    assert text.split() == [f"tok{i}" for i in range(conv.tokens)], conv.cid
    usage = [e["usage"] for e in events if e.get("usage")]
    assert usage[-1]["prompt_tokens"] == conv.words, conv.cid
    assert len({e["id"] for e in events}) == 1  # one generation, not two spliced


def start_until_both_nodes_own(
    client: httpx.Client, nodes: list[Supervisor], prefix: str
) -> list[Conversation]:
    convs: list[Conversation] = []
    for k in range(MAX_CONVERSATIONS):
        counts = [sum(c.owner == i for c in convs) for i in range(len(nodes))]
        if min(counts) >= PER_NODE:
            break
        # Some ids have `/` in them (`user/chat` style), which the path carries as %2F.
        cid = f"{prefix}-{k}" if k % 2 else f"{prefix}-user{k}/chat"
        conv = Conversation(cid, words=k + 1, tokens=30 + k)
        start(client, conv)
        found = owners(nodes, cid)
        assert len(found) == 1, f"{cid} is on nodes {found}: exactly one must run it"
        conv.owner = found[0]
        convs.append(conv)
    counts = [sum(c.owner == i for c in convs) for i in range(len(nodes))]
    assert min(counts) >= PER_NODE, f"{len(convs)} conversations split {counts} over the nodes"
    return convs


def test_each_reattach_reaches_the_node_that_owns_the_stream(
    fleet: tuple[list[Supervisor], Caddy],
) -> None:
    nodes, caddy = fleet
    with https(caddy) as client:
        convs = start_until_both_nodes_own(client, nodes, "fleet")
        for way, conv in enumerate(convs):
            tail = replay(client, conv.cid, len(conv.first), way)
            whole = direct_replay(nodes[conv.owner], conv.cid)
            assert whole.status_code == 200
            assert conv.first + tail == whole.content, conv.cid
            check_bytes(whole.content, conv)
            # The other node never heard of it: the re-attach could only have been the owner's.
            assert direct_replay(nodes[1 - conv.owner], conv.cid).status_code == 404
            # The same request again, another way, lands on the same node.
            assert replay(client, conv.cid, 0, way + 1) == whole.content


def test_a_stopped_node_takes_only_its_own_streams_away(
    fleet: tuple[list[Supervisor], Caddy],
) -> None:
    nodes, caddy = fleet
    with https(caddy) as client:
        convs = start_until_both_nodes_own(client, nodes, "stop")
        # Let every stream finish so the stopped node's drain has nothing left to wait for.
        for conv in convs:
            check_bytes(replay(client, conv.cid, 0, 0), conv)
        gone, kept = 0, 1
        assert nodes[gone].terminate() == 0

        for way, conv in enumerate(convs):
            url, headers = REATTACH[way % len(REATTACH)](conv.cid)
            r = client.get(url, headers=headers)
            if conv.owner == kept:
                assert r.status_code == 200, r.text
                assert r.content == direct_replay(nodes[kept], conv.cid).content
                check_bytes(r.content, conv)
            else:
                # Caddy could not reach the stopped node, so it asked the other one, which
                # has no such stream: the stream is gone with its node, as a 404, not a 502.
                assert r.status_code == 404, (conv.cid, r.status_code, r.text)

        # New conversations, and new turns of the stopped node's ones, go to the node left.
        later = [
            Conversation(c.cid, words=c.words + 50, tokens=10) for c in convs if c.owner == gone
        ]
        later += [Conversation(f"after-{k}", words=k + 1, tokens=10 + k) for k in range(4)]
        for way, conv in enumerate(later):
            start(client, conv)
            assert owners(nodes, conv.cid) == [kept], conv.cid
            tail = replay(client, conv.cid, len(conv.first), way)
            check_bytes(conv.first + tail, conv)


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_stays_on_one_node_whatever_the_conversation(
    fleet: tuple[list[Supervisor], Caddy],
) -> None:
    """The web UI's sign-in session and stored conversations live in one node's database, so
    a browser is pinned by a cookie set on its first page load; an API client gets no pin."""
    nodes, caddy = fleet
    with https(caddy) as api:
        models = api.get("/v1/models")
        assert models.status_code == 200
        assert "set-cookie" not in models.headers
        page = api.get("/", headers={"Accept": "*/*"})
        assert page.status_code == 200
        assert "set-cookie" not in page.headers
    with https(caddy) as browser:  # httpx keeps cookies as a browser does
        page = browser.get("/", headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 200
        pin = browser.cookies.get("corral_node")
        assert pin is not None, page.headers
        cookie = page.headers["set-cookie"]
        for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
            assert attribute in cookie, cookie
        # Later page loads keep the pin they have.
        again = browser.get("/", headers={"Accept": BROWSER_ACCEPT})
        assert "set-cookie" not in again.headers

        saved = browser.post("/api/conversations", json={"id": "pinned-chat", "title": "mine"})
        assert saved.status_code in {200, 201}, saved.text
        convs = [Conversation(f"pinned-{k}", words=k + 1, tokens=20 + k) for k in range(8)]
        for conv in convs:
            start(browser, conv)
            conv.owner = owners(nodes, conv.cid)[0]
        home = {c.owner for c in convs}
        assert len(home) == 1, f"one browser's streams went to nodes {home}"
        (node,) = home
        with nodes[node].http() as direct:
            assert direct.get("/api/conversations/pinned-chat").status_code == 200
        with nodes[1 - node].http() as direct:
            assert direct.get("/api/conversations/pinned-chat").status_code == 404
        # Everything the web UI does next reaches the same node: its conversation list, one
        # lookup of all its streams together, and the re-attaches by path.
        listed = browser.get("/api/conversations")
        assert listed.status_code == 200
        assert "pinned-chat" in {c["id"] for c in listed.json()["data"]}
        lookup = browser.post(
            "/v1/streams/lookup", json={"conversation_ids": [c.cid for c in convs]}
        )
        assert lookup.status_code == 200
        assert {i["conversation_id"] for i in lookup.json()["data"]} == {c.cid for c in convs}
        for conv in convs:
            tail = replay(browser, conv.cid, len(conv.first), 0)
            check_bytes(conv.first + tail, conv)
