"""Corral's overhead: the same model, prompt and sampling through Corral's HTTP API and through
llama-cpp-python in-process, alternating round by round in one run.

    .venv/bin/python bench/overhead.py [--model PATH] [--rounds 5] [--max-tokens 128]

Prints time to first token and decode tokens/s for both, and Corral/in-process ratios.
Both sides stream; both generate exactly --max-tokens tokens (temperature 0, a prompt that
does not end early; a round that stops early is reported and left out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.streaming import stream_events
from tests.support.supervisor_proc import Supervisor

PROMPT = "Write a long, detailed story about a horse who learns to program computers."


@dataclass
class Sample:
    ttft: float
    tokens_per_second: float


def bench_inprocess(llama: object, max_tokens: int) -> Sample | None:
    start = time.perf_counter()
    first = last = 0.0
    tokens = 0
    finish = None
    for chunk in llama.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=max_tokens,
        temperature=0,
        seed=1,
        stream=True,
    ):
        choice = chunk["choices"][0]
        if choice["delta"].get("content"):
            tokens += 1
            last = time.perf_counter()
            if not first:
                first = last
        finish = choice.get("finish_reason") or finish
    if finish != "length":
        return None
    return Sample(first - start, (max_tokens - 1) / (last - first))


def bench_corral(client: httpx.Client, max_tokens: int) -> Sample | None:
    body = {
        "model": "bench",
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
    return Sample(first - start, (max_tokens - 1) / (last - first))


def summary(name: str, samples: list[Sample]) -> tuple[float, float]:
    ttft = statistics.median(s.ttft for s in samples)
    tps = statistics.median(s.tokens_per_second for s in samples)
    print(
        f"{name:<12} TTFT median {ttft * 1000:8.1f} ms   decode median {tps:7.2f} tok/s   ({len(samples)} rounds)"
    )
    return ttft, tps


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="GGUF file (default: the demo model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from corral.supervisor.models.demo_model import ensure_demo_model

            model = ensure_demo_model(work / "demo")
        models_dir = work / "models"
        models_dir.mkdir()
        config = work / "corral.toml"
        config.write_text(
            f'default_model = "bench"\ndemo_model = false\n[models.bench]\npath = "{model.resolve()}"\n'
            f"n_ctx = {args.n_ctx}\nn_threads = {args.threads}\n"
        )
        print(f"model {model} ({model.stat().st_size / 1e6:.0f} MB), {args.max_tokens} tokens, "
              f"n_ctx {args.n_ctx}, {args.threads} threads, {args.rounds} rounds")  # fmt: skip
        llama = llama_cpp.Llama(
            model_path=str(model), n_ctx=args.n_ctx, n_threads=args.threads, verbose=False
        )
        sup = Supervisor(data_dir=work / "data", models_dir=models_dir, config=config).start()
        try:
            with httpx.Client(base_url=sup.base_url, timeout=600) as client:
                bench_corral(client, 4)  # load the model and warm both caches
                bench_inprocess(llama, 4)
                inproc: list[Sample] = []
                corral: list[Sample] = []
                for round_ in range(args.rounds):
                    # Alternate the order so drift on a shared machine hits both sides alike.
                    order = ("corral", "inproc") if round_ % 2 == 0 else ("inproc", "corral")
                    for side in order:
                        sample = (
                            bench_corral(client, args.max_tokens)
                            if side == "corral"
                            else bench_inprocess(llama, args.max_tokens)
                        )
                        if sample is None:
                            print(f"round {round_}: {side} stopped before max_tokens; left out")
                        else:
                            (corral if side == "corral" else inproc).append(sample)
        finally:
            sup.terminate()
    if not inproc or not corral:
        print("not enough complete rounds")
        return 1
    in_ttft, in_tps = summary("in-process", inproc)
    co_ttft, co_tps = summary("corral", corral)
    print(
        f"ratio corral/in-process: TTFT x{co_ttft / in_ttft:.3f}   decode tok/s x{co_tps / in_tps:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
