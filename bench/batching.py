"""Continuous batching: aggregate tokens/s of N concurrent streams through Corral, against the
same N streams through llama.cpp's `llama-server -np N`, one stream through Corral and one
stream of llama-cpp-python in-process, alternating rounds.

    .venv/bin/python bench/batching.py [--model PATH] [--streams 8] [--rounds 3] [--max-tokens 96]

llama-server is the cached build of `make llama-server` (skipped with a note when it is not
built, or with --no-llama-server); it gets the same context per slot and thread count, and
otherwise its defaults.

Same model, prompts, sampling (temperature 0) and thread count on every side. Throughput is
completion tokens over wall time from the first request to the last token (prefill included),
so the ratios say what a user sees. The model is the demo model (assembled once into
.data/demo, as `make serve` does) unless --model names a GGUF; without the demo extra, the tiny
random GGUF of the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import llama_side
from bench.streaming import stream_events
from tests.support.supervisor_proc import Supervisor

ROOT = Path(__file__).resolve().parents[1]

TOPICS = ["a horse", "the sea", "a lighthouse", "Paris", "a robot", "winter", "a library", "bees"]


def prompt(i: int) -> str:
    return f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}, chapter {i}."


@dataclass
class Run:
    tokens: int
    ttft: float
    seconds: float


def corral_stream(client: httpx.Client, i: int, max_tokens: int) -> Run:
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": prompt(i)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = 0.0
    tokens = 0
    for event in stream_events(client, body):
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
        elif event.get("choices") and event["choices"][0]["delta"].get("content") and not first:
            first = time.perf_counter()
    return Run(tokens, first - start, time.perf_counter() - start)


def inprocess_stream(llama: object, i: int, max_tokens: int) -> Run:
    start = time.perf_counter()
    first = 0.0
    tokens = 0
    for chunk in llama.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": prompt(i)}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
    ):
        if chunk["choices"][0]["delta"].get("content"):
            tokens += 1
            first = first or time.perf_counter()
    return Run(tokens, first - start, time.perf_counter() - start)


def concurrent(client: httpx.Client, streams: int, max_tokens: int) -> tuple[float, float]:
    """Aggregate tokens/s and median TTFT of ``streams`` requests sent at once."""
    start = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        runs = list(pool.map(lambda i: corral_stream(client, i, max_tokens), range(streams)))
    wall = time.perf_counter() - start
    return sum(r.tokens for r in runs) / wall, statistics.median(r.ttft for r in runs)


def model_path(arg: Path | None, work: Path) -> Path:
    if arg is not None:
        return arg
    try:
        from corral.supervisor.models.demo_model import ensure_demo_model

        return ensure_demo_model(ROOT / ".data" / "demo")
    except Exception as exc:  # the demo extra is not installed
        print(f"no demo model ({exc}); using the tiny random GGUF")
        from tests.support.tiny_gguf import write_tiny_gguf

        return write_tiny_gguf(work / "tiny.gguf", n_ctx=2048)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="GGUF file (default: the demo model)")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-llama-server", action="store_true")
    args = parser.parse_args()
    with_server = not args.no_llama_server and llama_side.available()
    if not with_server:
        print("without llama-server (make llama-server builds it)")

    import llama_cpp
    import llama_cpp.llama_cpp as low_level

    from corral.child.llama.machine import extra_buffers_work

    if not extra_buffers_work():
        # The same model parameters the child uses: without this, llama-cpp-python's Llama dies
        # of SIGILL on AMX CPUs (see corral/child/llama/machine.py).
        defaults = low_level.llama_model_default_params

        def model_params() -> object:
            params = defaults()
            params.use_extra_bufts = False
            return params

        low_level.llama_model_default_params = model_params

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        model = model_path(args.model, work)
        models_dir = work / "models"
        models_dir.mkdir()
        config = work / "corral.toml"
        config.write_text(
            f'default_model = "bench"\ndemo_model = false\n[models.bench]\npath = "{model.resolve()}"\n'
            f"n_ctx = {args.n_ctx}\nn_threads = {args.threads}\nparallel = {args.streams}\n"
        )
        print(f"model {model.name} ({model.stat().st_size / 1e6:.0f} MB), {args.streams} streams, "
              f"{args.max_tokens} tokens, {args.threads} threads, {args.rounds} rounds")  # fmt: skip
        llama = llama_cpp.Llama(
            model_path=str(model), n_ctx=args.n_ctx, n_threads=args.threads, verbose=False
        )
        server = None
        if with_server:
            server = stack.enter_context(
                llama_side.running(
                    model, slots=args.streams, n_ctx=args.n_ctx, threads=args.threads
                )
            )
        sup = Supervisor(data_dir=work / "data", models_dir=models_dir, config=config).start()
        served: list[float] = []
        served_ttft: list[float] = []
        many: list[float] = []
        many_ttft: list[float] = []
        one: list[float] = []
        one_ttft: list[float] = []
        inproc: list[float] = []
        inproc_ttft: list[float] = []
        try:
            with httpx.Client(base_url=sup.base_url, timeout=900) as client:
                corral_stream(client, 0, 4)  # load the model and warm both sides
                inprocess_stream(llama, 0, 4)
                if server is not None:
                    corral_stream(server, 0, 4)
                for round_ in range(args.rounds):
                    sides = ["many", "one", "inproc", *(["server"] if server else [])]
                    # Rotate the order so drift on a shared machine hits every side alike.
                    turn = round_ % len(sides)
                    for side in sides[turn:] + sides[:turn]:
                        if side == "server":
                            assert server is not None
                            tps, ttft = concurrent(server, args.streams, args.max_tokens)
                            served.append(tps)
                            served_ttft.append(ttft)
                        elif side == "many":
                            tps, ttft = concurrent(client, args.streams, args.max_tokens)
                            many.append(tps)
                            many_ttft.append(ttft)
                        elif side == "one":
                            run = corral_stream(client, round_, args.max_tokens)
                            one.append(run.tokens / run.seconds)
                            one_ttft.append(run.ttft)
                        else:
                            run = inprocess_stream(llama, round_, args.max_tokens)
                            inproc.append(run.tokens / run.seconds)
                            inproc_ttft.append(run.ttft)
        finally:
            sup.terminate()
    med = statistics.median
    print(
        f"corral {args.streams} streams: {med(many):7.2f} tok/s aggregate, TTFT median {med(many_ttft) * 1000:7.1f} ms"
    )
    if served:
        print(
            f"llama-server -np {args.streams}: {med(served):7.2f} tok/s aggregate, TTFT median {med(served_ttft) * 1000:7.1f} ms"
        )
    print(f"corral 1 stream:  {med(one):7.2f} tok/s, TTFT {med(one_ttft) * 1000:7.1f} ms")
    print(f"in-process 1:     {med(inproc):7.2f} tok/s, TTFT {med(inproc_ttft) * 1000:7.1f} ms")
    if served:
        print(
            f"ratio corral / llama-server, {args.streams} streams: x{med(many) / med(served):.2f}"
        )
    print(f"ratio {args.streams} streams / corral 1 stream: x{med(many) / med(one):.2f}")
    print(f"ratio {args.streams} streams / in-process 1 stream: x{med(many) / med(inproc):.2f}")
    print(f"ratio corral 1 stream / in-process 1 stream: x{med(one) / med(inproc):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
