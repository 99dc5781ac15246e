"""Memory the supervisor spends on idle connections and on readers that stopped reading.

    .venv/bin/python bench/connections.py [--idle 200] [--stalled 8] [--tokens 32768]

Starts a real supervisor with a fake model, then measures its RSS (psutil) with --idle open
keep-alive connections, with --stalled clients that asked for a --tokens answer and read
nothing (receive window 4 KiB), and after they all left. Prints bytes per idle connection,
bytes per stalled reader, and the stalled figure as a ratio to the anchor: the ~10 MB per such
request (320 bytes a token at 32768 tokens) that issue 16 measured before the bound.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.supervisor_proc import Supervisor

ANCHOR_BYTES_PER_STALLED = 320 * 32768


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def settle(pid: int, seconds: float = 3.0) -> int:
    """RSS once it stops moving (a generation in flight grows it for a while)."""
    last, deadline = rss(pid), time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = rss(pid)
        if abs(now - last) < 256 << 10:
            return now
        last = now
    return last


def connect(url: str, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    return sock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--stalled", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32768)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "models").mkdir()
        config = work / "corral.toml"
        config.write_text(
            'default_model = "fake-long"\ndemo_model = false\n'
            f'[models.fake-long]\nbackend = "fake"\nargs = ["--reply-tokens", "{args.tokens}"]\n'
        )
        sup = Supervisor(data_dir=work / "data", models_dir=work / "models", config=config).start()
        assert sup.proc is not None
        pid = sup.proc.pid
        try:
            warm = connect(sup.base_url)
            warm.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            warm.recv(4096)
            base = settle(pid)
            idle = [connect(sup.base_url) for _ in range(args.idle)]
            for sock in idle:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                sock.recv(4096)
            with_idle = settle(pid)
            body = (
                b'{"stream": true, "max_tokens": %d, "messages": [{"role": "user", "content": "go"}]}'
                % args.tokens
            )
            stalled = [connect(sup.base_url, rcvbuf=4096) for _ in range(args.stalled)]
            for sock in stalled:
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
            with_stalled = settle(pid, 5.0)
            for sock in stalled + idle + [warm]:
                sock.close()
            after = settle(pid, 5.0)
        finally:
            sup.terminate()
    per_idle = (with_idle - base) / args.idle
    per_stalled = (with_stalled - with_idle) / args.stalled
    print(
        f"supervisor RSS: base {base / 2**20:.1f} MiB, +{args.idle} idle connections "
        f"{with_idle / 2**20:.1f} MiB, +{args.stalled} stalled readers "
        f"{with_stalled / 2**20:.1f} MiB, after all left {after / 2**20:.1f} MiB"
    )
    print(f"per idle connection: {per_idle / 1024:.1f} KiB")
    print(
        f"per stalled reader ({args.tokens} tokens): {per_stalled / 1024:.1f} KiB; "
        f"ratio to the anchor ({ANCHOR_BYTES_PER_STALLED / 2**20:.1f} MiB): "
        f"{per_stalled / ANCHOR_BYTES_PER_STALLED:.3f}"
    )
    print(f"kept after they left: {(after - base) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
