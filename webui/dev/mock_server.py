#!/usr/bin/env python3
"""A stand-in for the Corral API, for developing and screenshotting the web UI alone.

Standard library only. Serves the built UI (../supervisor/webui_dist) and fakes the routes the
UI calls, including resumable streams: each generation writes its SSE bytes (with
`id: <offset after the event>`) into a per-conversation buffer and keeps going when the client
disconnects; GET /v1/stream/{id}?from=N replays and follows.

    python3 dev/mock_server.py --port 8765 [--auth] [--token-delay 0.03]

Not part of the product: the real server is `corral.supervisor`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DIST = Path(__file__).resolve().parent.parent.parent / "supervisor" / "webui_dist"
ARGS = argparse.Namespace(auth=False, token_delay=0.03)
LOCK = threading.Lock()
START = time.time()

ANSWER = """<think>
The user wants a quick overview. I'll show a table, some code and a formula.
</think>

Here is a short overview of **sorting algorithms**:

| Algorithm | Average | Worst | Stable |
|---|---|---|---|
| Quicksort | $O(n \\log n)$ | $O(n^2)$ | no |
| Merge sort | $O(n \\log n)$ | $O(n \\log n)$ | yes |
| Insertion sort | $O(n^2)$ | $O(n^2)$ | yes |

A compact quicksort in Python:

```python
def quicksort(xs: list[int]) -> list[int]:
    if len(xs) <= 1:
        return xs
    pivot, *rest = xs
    return quicksort([x for x in rest if x < pivot]) + [pivot] + quicksort([x for x in rest if x >= pivot])
```

The expected number of comparisons is

$$C(n) \\approx 2n \\ln n \\approx 1.39\\, n \\log_2 n$$

which is why quicksort is fast in practice — héllo wörld 🌍, 日本語 works too.
"""

MODELS = [
    {"id": "qwen2.5-7b-instruct-q4", "state": "loaded", "progress": None, "error": None, "default": True},
    {"id": "llama-3.2-3b-instruct", "state": "unloaded", "progress": None, "error": None, "default": False},
    {"id": "deepseek-r1-distill-8b", "state": "loading", "progress": 0.42, "error": None, "default": False},
    {"id": "phi-4-mini", "state": "downloading", "progress": 0.67, "error": None, "default": False},
    {"id": "broken-model", "state": "failed", "progress": None, "error": "exit code 1: out of memory", "default": False},
]

CONVERSATIONS: dict[str, dict] = {}
SESSIONS: dict[str, "Session"] = {}
TOKENS = {"secret-token": {"name": "admin", "admin": True}}


def now() -> float:
    return time.time()


def seed_conversations() -> None:
    t = now()
    samples = [
        ("Sourdough starter schedule", True, 3600 * 5),
        ("Rust lifetimes explained", False, 600),
        ("Trip plan: Lisbon in 4 days", False, 86400 + 100),
        ("SQL window functions", False, 86400 * 3),
        ("Birthday poem for Anna", False, 86400 * 12),
    ]
    for i, (title, pinned, age) in enumerate(samples):
        cid = f"c-seed{i}"
        CONVERSATIONS[cid] = {
            "id": cid,
            "title": title,
            "pinned": pinned,
            "model": MODELS[0]["id"],
            "mode": "normal",
            "system_prompt": "",
            "settings": {},
            "messages": [
                {"role": "user", "content": f"Tell me about {title.lower()}."},
                {
                    "role": "assistant",
                    "content": f"Sure! Here are some notes about *{title}*.\n\n- First point\n- Second point\n\n`inline code` and a formula $e^{{i\\pi}}+1=0$.",
                    "reasoning": "Short plan: list two points.",
                    "stats": {"ttft_ms": 180, "tokens_per_second": 41.3, "prompt_tokens": 24, "completion_tokens": 61},
                },
            ],
            "created_at": t - age - 60,
            "updated_at": t - age,
        }


class Session:
    def __init__(self, cid: str, model: str) -> None:
        self.cid = cid
        self.model = model
        self.buf = bytearray()
        self.state = "running"
        self.cond = threading.Condition()
        self.cancelled = False
        self.finished_at: float | None = None

    def emit(self, data: str) -> None:
        with self.cond:
            base = len(self.buf)
            body = f"data: {data}\n"
            n = 0
            while True:  # id is the offset after the event, which includes the id line itself
                ev = f"{body}id: {n}\n\n"
                end = base + len(ev.encode())
                if end == n:
                    break
                n = end
            self.buf += ev.encode()
            self.cond.notify_all()

    def finish(self, state: str) -> None:
        with self.cond:
            self.state = state
            self.finished_at = now()
            self.cond.notify_all()


def chunk(model: str, delta: dict, finish: str | None = None, usage: dict | None = None) -> str:
    obj = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": int(now()),
        "model": model,
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        obj["usage"] = usage
    return json.dumps(obj, ensure_ascii=False)


def tokenize(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


def generate(sess: Session, messages: list[dict], max_tokens: int) -> None:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    delay = ARGS.token_delay * (5 if "slow" in last.lower() else 1)
    if "error" in last.lower():
        sess.emit(chunk(sess.model, {"role": "assistant", "content": "Starting… "}))
        time.sleep(0.3)
        sess.emit(json.dumps({"error": {"message": "The model crashed (mock).", "type": "server_error", "param": None, "code": None}}))
        sess.emit("[DONE]")
        sess.finish("failed")
        return
    text = ANSWER if "short" not in last.lower() else "A short answer: **42**."
    sess.emit(chunk(sess.model, {"role": "assistant", "content": ""}))
    time.sleep(0.25)  # time to first token
    n = 0
    for tok in tokenize(text)[:max_tokens]:
        if sess.cancelled:
            break
        # Split a token across two events now and then (as real tokenizers do).
        if len(tok) > 3 and random.random() < 0.2:
            sess.emit(chunk(sess.model, {"content": tok[:2]}))
            sess.emit(chunk(sess.model, {"content": tok[2:]}))
        else:
            sess.emit(chunk(sess.model, {"content": tok}))
        n += 1
        time.sleep(delay)
    sess.emit(chunk(sess.model, {}, finish="stop" if not sess.cancelled else "cancelled"))
    sess.emit(chunk(sess.model, {}, usage={"prompt_tokens": 20 + 7 * len(messages), "completion_tokens": n, "total_tokens": n + 20}))
    sess.emit("[DONE]")
    sess.finish("cancelled" if sess.cancelled else "done")


def analytics(q: dict) -> dict:
    rnd = random.Random(7)
    countries = ["DE", "FR", "US", "NL", "", "JP"]
    users = ["alice", "bob", "admin", "ci-key"]
    groups = ["chat", "models", "stream", "admin", "ui"]
    items = []
    t = now()
    for i in range(137):
        m = rnd.choice([m["id"] for m in MODELS[:3]])
        status = rnd.choice([200] * 12 + [400, 401, 500])
        items.append(
            {
                "ts": t - i * 311,
                "principal": rnd.choice(users),
                "method": "POST" if i % 3 else "GET",
                "path": "/v1/chat/completions" if i % 3 else "/v1/models",
                "route_group": rnd.choice(groups),
                "action": "completion",
                "status": status,
                "latency_ms": rnd.uniform(20, 9000),
                "client_ip": f"203.0.113.{rnd.randint(1, 250)}" if i % 4 else "192.168.1.20",
                "country": rnd.choice(countries) or None,
                "browser": rnd.choice(["Chrome", "Firefox", "Safari", None]),
                "os": rnd.choice(["Linux", "macOS", "Android", "iOS"]),
                "device": rnd.choice(["Desktop", "Mobile"]),
                "model": m if i % 3 else None,
                "prompt_tokens": rnd.randint(10, 900) if i % 3 else None,
                "completion_tokens": rnd.randint(10, 700) if i % 3 else None,
                "ttft_ms": rnd.uniform(80, 900) if i % 3 else None,
                "tokens_per_second": rnd.uniform(15, 60) if i % 3 else None,
                "conversation_id": f"c-{i}" if i % 3 else None,
            }
        )

    def match(e: dict) -> bool:
        for key, field in (("country", "country"), ("group", "route_group"), ("user", "principal"), ("model", "model")):
            if q.get(key) and (e[field] or "") != q[key]:
                return False
        if q.get("hide_private") == "true" and e["client_ip"].startswith("192.168."):
            return False
        if q.get("since") and e["ts"] < float(q["since"]):
            return False
        return True

    items = [e for e in items if match(e)]

    def count(field: str) -> list[dict]:
        c: dict[str, int] = {}
        for e in items:
            c[e[field] or ""] = c.get(e[field] or "", 0) + 1
        return [{"key": k, "requests": v} for k, v in sorted(c.items(), key=lambda kv: -kv[1])]

    per_model = []
    for row in count("model"):
        if not row["key"]:
            continue
        sel = [e for e in items if e["model"] == row["key"]]
        per_model.append({**row, "prompt_tokens": sum(e["prompt_tokens"] or 0 for e in sel), "completion_tokens": sum(e["completion_tokens"] or 0 for e in sel)})
    buckets: dict[int, int] = {}
    for e in items:
        b = int(e["ts"] // 1800 * 1800)
        buckets[b] = buckets.get(b, 0) + 1
    limit = int(q.get("limit", 25))
    offset = int(q.get("offset", 0))
    return {
        "totals": {
            "requests": len(items),
            "errors": sum(1 for e in items if e["status"] >= 400),
            "prompt_tokens": sum(e["prompt_tokens"] or 0 for e in items),
            "completion_tokens": sum(e["completion_tokens"] or 0 for e in items),
            "unique_users": len({e["principal"] for e in items}),
            "unique_ips": len({e["client_ip"] for e in items}),
            "active_users_10m": 2,
        },
        "per_country": count("country"),
        "per_group": count("route_group"),
        "per_user": count("principal"),
        "per_model": per_model,
        "latency_ms": {"p50": 412.0, "p90": 2870.5, "p99": 8120.0},
        "ttft_ms": {"p50": 180.2, "p90": 540.0, "p99": 880.1},
        "over_time": [{"ts": k, "requests": v} for k, v in sorted(buckets.items())],
        "events": {"total": len(items), "items": items[offset : offset + limit]},
    }


def admin_models() -> list[dict]:
    out = []
    for i, m in enumerate(MODELS):
        out.append(
            {
                "id": m["id"],
                "state": m["state"],
                "size_bytes": [4_680_000_000, 2_020_000_000, 4_920_000_000, 2_490_000_000, 1_100_000_000][i],
                "backend": "llama",
                "source": f"hf:org/{m['id']}-GGUF",
                "loaded_since": now() - 3000 if m["state"] == "loaded" else None,
                "last_used": now() - 40 * (i + 1),
                "memory_bytes": 5_100_000_000 if m["state"] == "loaded" else None,
                "in_flight": sum(1 for s in SESSIONS.values() if s.state == "running" and s.model == m["id"]),
                "queued": 0,
                "keep_alive_deadline": now() + 280 if m["state"] == "loaded" else None,
                "progress": m["progress"],
                "error": m["error"],
                "pinned": i == 0,
            }
        )
    return out


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def __init__(self, *a, **kw):
        super().__init__(*a, directory=str(DIST), **kw)

    def log_message(self, fmt: str, *args) -> None:  # quiet
        pass

    # ---------------------------------------------------------------- helpers

    def send_json(self, obj, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error_json(self, status: int, message: str) -> None:
        self.send_json({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}, status)

    def body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def authorized(self) -> dict | None:
        if not ARGS.auth:
            return {"name": "local", "admin": True}
        h = self.headers.get("Authorization", "")
        return TOKENS.get(h.removeprefix("Bearer ").strip())

    def follow(self, sess: Session, start: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        pos = start
        try:
            while True:
                with sess.cond:
                    while len(sess.buf) <= pos and sess.state == "running":
                        sess.cond.wait(timeout=15)
                    data = bytes(sess.buf[pos:])
                    ended = sess.state != "running"
                if data:
                    self.wfile.write(data)
                    self.wfile.flush()
                    pos += len(data)
                if ended and pos >= len(sess.buf):
                    return
        except (BrokenPipeError, ConnectionResetError):
            return

    # ---------------------------------------------------------------- routes

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        p = url.path
        if p == "/api/ui-config":
            return self.send_json(
                {
                    "version": "0.1.0-mock",
                    "auth_required": ARGS.auth,
                    "default_model": MODELS[0]["id"],
                    "modes": {
                        "fast": {"label": "Fast", "system_prompt": "Answer in at most three sentences."},
                        "normal": {"label": "Normal", "system_prompt": ""},
                        "deep": {"label": "Deep", "system_prompt": "Think step by step and answer thoroughly."},
                    },
                    "defaults": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 2048},
                }
            )
        if not (p.startswith("/api/") or p.startswith("/v1/") or p.startswith("/admin/")):
            return super().do_GET()
        user = self.authorized()
        if user is None:
            return self.error_json(401, "Sign in first.")
        if p == "/api/me":
            return self.send_json(user)
        if p == "/v1/models":
            for m in MODELS:
                if m["state"] in ("loading", "downloading") and m["progress"] is not None:
                    m["progress"] = min(0.99, m["progress"] + 0.01)
            return self.send_json({"object": "list", "data": [{"object": "model", "created": 0, "owned_by": "corral", **m} for m in MODELS]})
        if p == "/api/conversations":
            data = [{k: c[k] for k in ("id", "title", "pinned", "model", "mode", "created_at", "updated_at")} for c in CONVERSATIONS.values()]
            return self.send_json({"data": sorted(data, key=lambda c: -c["updated_at"])})
        m = re.fullmatch(r"/api/conversations/([^/]+)", p)
        if m:
            c = CONVERSATIONS.get(urllib.parse.unquote(m.group(1)))
            return self.send_json(c) if c else self.error_json(404, "No such conversation.")
        m = re.fullmatch(r"/v1/stream/([^/]+)", p)
        if m:
            sess = SESSIONS.get(urllib.parse.unquote(m.group(1)))
            if not sess:
                return self.error_json(404, "No such stream.")
            start = int(q.get("from") or self.headers.get("Last-Event-ID") or 0)
            if start > len(sess.buf):
                return self.error_json(416, "Offset past the end.")
            return self.follow(sess, start)
        if p == "/admin/models":
            return self.send_json({"data": admin_models()})
        if p == "/admin/server":
            return self.send_json(
                {
                    "version": "0.1.0-mock",
                    "uptime_s": now() - START + 86400 * 2 + 3700,
                    "queue_depth": 1,
                    "children": [
                        {"model": MODELS[0]["id"], "pid": 41231, "state": "loaded", "memory_bytes": 5_100_000_000, "cpu_percent": 37.5},
                        {"model": MODELS[2]["id"], "pid": 41502, "state": "loading", "memory_bytes": 1_300_000_000, "cpu_percent": 98.0},
                    ],
                }
            )
        if p == "/admin/analytics/summary":
            return self.send_json(analytics(q))
        if p == "/admin/analytics/export.csv":
            rows = analytics({**q, "limit": 100000})["events"]["items"]
            body = ("ts,principal,path,status\n" + "".join(f"{e['ts']},{e['principal']},{e['path']},{e['status']}\n" for e in rows)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if p == "/admin/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                done = 0
                total = 2_490_000_000
                while True:
                    done = min(total, done + 80_000_000)
                    ev = {
                        "job": "job-1",
                        "repo": "org/phi-4-mini-GGUF",
                        "state": "running" if done < total else "finished",
                        "bytes_done": done,
                        "bytes_total": total,
                        "bytes_per_second": 80_000_000,
                        "files": {"phi-4-mini-Q4_K_M.gguf": [done - 1000, total - 1000], "README.md": [1000, 1000]},
                    }
                    self.wfile.write(f"event: download\ndata: {json.dumps(ev)}\n\n".encode())
                    for row in admin_models():
                        if row["state"] == "loading":
                            self.wfile.write(f"event: model\ndata: {json.dumps(row)}\n\n".encode())
                    self.wfile.flush()
                    if done >= total:
                        done = 0
                    time.sleep(1)
            except (BrokenPipeError, ConnectionResetError):
                return
        return self.error_json(404, f"No route {p}")

    def do_POST(self) -> None:
        p = urllib.parse.urlsplit(self.path).path
        if p == "/api/login":
            b = self.body()
            if b.get("username") == "admin" and b.get("password") == "admin":
                return self.send_json({"token": "secret-token", "expires_at": int(now()) + 86400, "user": TOKENS["secret-token"]})
            return self.error_json(401, "Wrong user name or password.")
        user = self.authorized()
        if user is None:
            return self.error_json(401, "Sign in first.")
        if p == "/api/logout":
            self.send_response(204)
            self.end_headers()
            return
        if p == "/api/conversations":
            b = self.body()
            cid = b.get("id") or f"c-srv{random.randrange(10**9)}"
            t = now()
            c = {"id": cid, "title": b.get("title") or "", "pinned": False, "model": b.get("model"), "mode": b.get("mode") or "normal", "system_prompt": b.get("system_prompt") or "", "settings": {}, "messages": [], "created_at": t, "updated_at": t}
            CONVERSATIONS[cid] = c
            return self.send_json(c, 201)
        if p == "/v1/streams/lookup":
            ids = self.body().get("conversation_ids", [])
            data = [{"conversation_id": i, "state": SESSIONS[i].state, "bytes": len(SESSIONS[i].buf), "model": SESSIONS[i].model} for i in ids if i in SESSIONS]
            return self.send_json({"data": data})
        if p == "/v1/chat/completions":
            b = self.body()
            model = b.get("model") or MODELS[0]["id"]
            if not any(m["id"] == model for m in MODELS):
                return self.error_json(404, f"Model {model} not found.")
            if model == "broken-model":
                return self.error_json(503, "Model broken-model failed to load: out of memory.")
            if not b.get("stream"):
                return self.send_json({"id": "x", "object": "chat.completion", "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": random.choice(["Sorting algorithms overview", '"Quicksort in Python."', "Title: Notes on sorting"])}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}})
            cid = self.headers.get("X-Conversation-Id")
            sess = Session(cid or "anon", model)
            if cid:
                if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", cid):
                    return self.error_json(400, "Bad conversation id.")
                old = SESSIONS.get(cid)
                if old:
                    old.cancelled = True
                SESSIONS[cid] = sess
            threading.Thread(target=generate, args=(sess, b.get("messages", []), int(b.get("max_tokens") or 4096)), daemon=True).start()
            return self.follow(sess, 0)
        if p in ("/admin/models/load", "/admin/models/unload", "/admin/models/delete", "/admin/models/cancel"):
            b = self.body()
            for m in MODELS:
                if m["id"] == b.get("model"):
                    m["state"] = {"/admin/models/load": "loaded", "/admin/models/unload": "unloaded"}.get(p, m["state"])
            if p == "/admin/models/delete":
                MODELS[:] = [m for m in MODELS if m["id"] != b.get("model")]
            return self.send_json({"ok": True})
        if p == "/admin/models/pull":
            return self.send_json({"job": f"job-{random.randrange(1000)}"}, 202)
        return self.error_json(404, f"No route {p}")

    def do_PATCH(self) -> None:
        if self.authorized() is None:
            return self.error_json(401, "Sign in first.")
        m = re.fullmatch(r"/api/conversations/([^/]+)", urllib.parse.urlsplit(self.path).path)
        c = CONVERSATIONS.get(urllib.parse.unquote(m.group(1))) if m else None
        if not c:
            return self.error_json(404, "No such conversation.")
        b = self.body()
        for k in ("title", "pinned", "model", "mode", "system_prompt", "settings", "messages"):
            if k in b:
                c[k] = b[k]
        c["updated_at"] = now()
        return self.send_json(c)

    def do_DELETE(self) -> None:
        if self.authorized() is None:
            return self.error_json(401, "Sign in first.")
        p = urllib.parse.urlsplit(self.path).path
        m = re.fullmatch(r"/v1/stream/([^/]+)", p)
        if m:
            sess = SESSIONS.get(urllib.parse.unquote(m.group(1)))
            if sess:
                sess.cancelled = True
        m = re.fullmatch(r"/api/conversations/([^/]+)", p)
        if m:
            CONVERSATIONS.pop(urllib.parse.unquote(m.group(1)), None)
        self.send_response(204)
        self.end_headers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--auth", action="store_true", help="require login (admin/admin)")
    parser.add_argument("--token-delay", type=float, default=0.03)
    parser.add_argument("--no-seed", action="store_true", help="start with no conversations")
    args = parser.parse_args()
    ARGS.auth = args.auth
    ARGS.token_delay = args.token_delay
    if not args.no_seed:
        seed_conversations()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"mock Corral on http://127.0.0.1:{args.port}/ serving {DIST}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
