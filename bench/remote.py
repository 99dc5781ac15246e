"""Corral's overhead in front of a remote engine: the same llama-server streamed straight and
through Corral (a remote preset naming it), alternating round by round in one run.

    .venv/bin/python bench/remote.py [--model PATH] [--rounds 5] [--max-tokens 128] [--streams 16]

Needs llama-server (`make llama-server`). Prints time to first token and decode tokens/s for
both paths and the Corral/direct ratios (the issue's goal: <= 3 ms more TTFT, >= 0.98x tok/s).
Both generate exactly --max-tokens tokens at temperature 0; a round that stops early is
reported and left out. With --streams N, a second llama-server starts too, and N concurrent
streams through Corral are timed on one replica and on both (aggregate tokens/s); on a
machine whose cores the two servers share, that measures the balancing, not a speed-up.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import llama_server
from bench.streaming import stream_events
from tests.support.supervisor_proc import Supervisor, wait_until

PROMPT = "Write a long, detailed story about a horse who learns to program computers."


@dataclass
class Sample:
    ttft: float
    tokens_per_second: float


def one_stream(client: httpx.Client, model: str, max_tokens: int) -> Sample | None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = last = 0.0
    finish = None
    completion = 0
    for event in stream_events(client, body):
        if event.get("usage"):
            completion = event["usage"]["completion_tokens"]
        if not event.get("choices"):
            continue
        choice = event["choices"][0]
        if choice["delta"].get("content"):
            last = time.perf_counter()
            if not first:
                first = last
        finish = choice.get("finish_reason") or finish
    if finish != "length" or completion != max_tokens:
        return None
    # A tiny model may deliver every token in one read: its decode rate is then unmeasurable.
    return Sample(first - start, (max_tokens - 1) / max(last - first, 1e-6))


def summary(name: str, samples: list[Sample]) -> tuple[float, float]:
    ttft = statistics.median(s.ttft for s in samples)
    tps = statistics.median(s.tokens_per_second for s in samples)
    print(
        f"{name:<8} TTFT median {ttft * 1000:8.1f} ms   decode median {tps:7.2f} tok/s   ({len(samples)} rounds)"
    )
    return ttft, tps


def aggregate(client: httpx.Client, model: str, streams: int, max_tokens: int) -> float:
    """Tokens per second of ``streams`` concurrent streams, all told."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(streams) as pool:
        counts = list(pool.map(lambda _: count_tokens(client, model, max_tokens), range(streams)))
    return sum(counts) / (time.perf_counter() - start)


def count_tokens(client: httpx.Client, model: str, max_tokens: int) -> int:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    usage = [e["usage"] for e in stream_events(client, body) if e.get("usage")]
    return int(usage[-1]["completion_tokens"]) if usage else 0


def start_server(
    binary: Path, model: Path, args: argparse.Namespace
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    server = subprocess.Popen(
        [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
         "-c", str(args.n_ctx * args.parallel), "-t", str(args.threads), "-np", str(args.parallel)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(url + "/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, 300, "llama-server to load")
    return url, server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="GGUF file (default: the demo model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=1, help="llama-server slots (-np)")
    parser.add_argument("--streams", type=int, default=0, help="concurrent streams; 0: none")
    args = parser.parse_args()
    binary = llama_server.binary()
    if binary is None:
        print("llama-server is not built: make llama-server")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from corral.supervisor.models.demo_model import ensure_demo_model

            model = ensure_demo_model(work / "demo")
        servers = [start_server(binary, model, args) for _ in range(2 if args.streams else 1)]
        urls = [url for url, _ in servers]
        url = urls[0]
        models_dir = work / "models"
        models_dir.mkdir()
        config = work / "corral.toml"
        replicas = ", ".join(f'"{u}/v1"' for u in urls)
        config.write_text(
            'default_model = "bench"\ndemo_model = false\nspeech_models = false\n'
            f'[models.bench]\nbackend = "remote"\nurl = "{url}/v1"\nmodel = "bench"\n'
            f'[models.pair]\nbackend = "remote"\nreplicas = [{replicas}]\nmodel = "bench"\n'
        )
        print(f"model {model} ({model.stat().st_size / 1e6:.0f} MB) on llama-server, "
              f"{args.max_tokens} tokens, {args.threads} threads, {args.rounds} rounds")  # fmt: skip
        sup: Supervisor | None = None
        try:
            sup = Supervisor(data_dir=work / "data", models_dir=models_dir, config=config).start()
            # llama-server closes kept-alive connections now and then without saying so (the
            # remote child retries such a request once on a new connection): the direct side
            # opens a new connection per request instead, a fraction of a ms on loopback.
            fresh = httpx.Limits(max_keepalive_connections=0)
            with (
                httpx.Client(base_url=sup.base_url, timeout=600) as corral_client,
                httpx.Client(base_url=url, timeout=600, limits=fresh) as direct_client,
            ):
                clients = {"corral": corral_client, "direct": direct_client}
                for client in clients.values():
                    one_stream(client, "bench", 4)  # warm both paths and the prompt cache
                samples: dict[str, list[Sample]] = {"corral": [], "direct": []}
                for round_ in range(args.rounds):
                    # Alternate the order so drift on a shared machine hits both sides alike.
                    order = ("corral", "direct") if round_ % 2 == 0 else ("direct", "corral")
                    for side in order:
                        try:
                            sample = one_stream(clients[side], "bench", args.max_tokens)
                        except httpx.HTTPError as exc:
                            print(f"round {round_}: {side} failed: {exc!r}")
                            raise
                        if sample is None:
                            print(f"round {round_}: {side} stopped before max_tokens; left out")
                        else:
                            samples[side].append(sample)
                if args.streams:
                    one = aggregate(corral_client, "bench", args.streams, args.max_tokens)
                    two = aggregate(corral_client, "pair", args.streams, args.max_tokens)
                    print(f"{args.streams} streams: one replica {one:.2f} tok/s, two replicas "
                          f"{two:.2f} tok/s (x{two / one:.2f})")  # fmt: skip
        finally:
            if sup is not None:
                sup.terminate()
            for _, server in servers:
                server.terminate()
                server.wait(30)
    if not samples["corral"] or not samples["direct"]:
        print("not enough complete rounds")
        return 1
    d_ttft, d_tps = summary("direct", samples["direct"])
    c_ttft, c_tps = summary("corral", samples["corral"])
    print(
        f"corral - direct TTFT {(c_ttft - d_ttft) * 1000:+.1f} ms   "
        f"ratio corral/direct: TTFT x{c_ttft / d_ttft:.3f}   decode tok/s x{c_tps / d_tps:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
