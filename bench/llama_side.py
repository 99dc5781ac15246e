"""llama.cpp's `llama-server` beside Corral in the benchmarks that compare the two.

`running(model, slots=..., n_ctx=..., threads=...)` starts the cached build (`make
llama-server`) on a free port with the same model and thread count as Corral's side, each of
its ``slots`` holding ``n_ctx`` tokens as Corral's do, and yields a client for its
OpenAI-compatible API. The client opens a new connection per request: llama-server closes
kept-alive connections now and then without saying so (see bench/remote.py).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from bench import llama_server
from tests.support.supervisor_proc import wait_until


def available() -> bool:
    return llama_server.binary() is not None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running(
    model: Path, *, slots: int, n_ctx: int, threads: int, extra: Sequence[str] = ()
) -> Iterator[httpx.Client]:
    binary = llama_server.binary()
    if binary is None:
        raise SystemExit("llama-server is not built: make llama-server")
    port = free_port()
    argv = [
        str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(n_ctx * slots), "-np", str(slots), "-t", str(threads), *extra,
    ]  # fmt: skip
    print("llama-server " + " ".join(argv[1:]))
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"llama-server exited with {server.returncode}")
        try:
            return httpx.get(url + "/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, 300, "llama-server to load")
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=url, timeout=900, limits=fresh) as client:
            yield client
    finally:
        server.terminate()
        server.wait(30)
