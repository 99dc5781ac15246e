"""Time to first token of a conversation's next turn while other streams are busy: with its
KV kept in the model's slot (X-Conversation-Id), against the same turn read from scratch and
against the same turn on llama.cpp's `llama-server` (which keeps each slot's prompt too).

    .venv/bin/python bench/conversation_ttft.py [--model PATH] [--history 2000] [--busy 8]
        [--rounds 3] [--sides warm,cold,server]

Each round, on each server in turn (the order alternates): turn 1 of a fresh conversation with
about --history tokens of history, then --busy other streams start, then turn 2: "warm" (same
conversation id, only the new turn is read), "cold" (the same messages under a new system line,
so no prefix is shared) and "server" (turn 2 of the same conversation on llama-server, with
--busy streams of its own). Same model, threads, slots (--busy + 2, n_ctx each) and prompts on
every side; llama-server otherwise runs with its defaults (prompt cache, 8 GiB host cache).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import llama_side
from bench.batching import corral_stream, model_path, prompt
from bench.streaming import stream_events
from tests.support.supervisor_proc import Supervisor

FACT = "The archive of the valley holds letters from many winters, each one about a river. "


def ttft(client: httpx.Client, messages: list[dict[str, str]], cid: str) -> float:
    body = {"model": "bench", "messages": messages, "max_tokens": 24, "temperature": 0}
    start = time.perf_counter()
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={**body, "stream": True},
        headers={"X-Conversation-Id": cid},
    ) as response:
        response.raise_for_status()
        first = 0.0
        for line in response.iter_lines():
            if first or not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):  # not the empty role chunk
                first = time.perf_counter()
    return first - start


def keep_busy(
    client: httpx.Client, i: int, stop: threading.Event, streaming: threading.Barrier
) -> None:
    """Stream request after request until ``stop``; meet at ``streaming`` once the first
    request's first token came, so turn 2 is timed among streams that decode, not among
    prompts still being read."""
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": prompt(i)}],
        "max_tokens": 64,
        "temperature": 0,
        "stream": True,
    }
    met = False
    while not stop.is_set():
        for event in stream_events(client, body):
            if not met and event.get("choices") and event["choices"][0]["delta"].get("content"):
                met = True
                streaming.wait()


def turn_two(client: httpx.Client, history: str, busy: int, sides: list[str]) -> dict[str, float]:
    """Turn 1 of a fresh conversation, then turn 2 for each of ``sides`` while ``busy`` other
    streams run on the same server."""
    cid = uuid.uuid4().hex
    messages: list[Any] = [
        {"role": "system", "content": f"You are a careful archivist ({cid})."},
        {"role": "user", "content": history + "Summarise the archive."},
    ]
    ttft(client, messages, cid)  # turn 1: read cold, now in a slot
    messages += [
        {"role": "assistant", "content": "It holds letters about rivers."},
        {"role": "user", "content": "Which season do the letters come from?"},
    ]
    stop = threading.Event()
    streaming = threading.Barrier(busy + 1)
    threads = [
        threading.Thread(target=keep_busy, args=(client, i, stop, streaming)) for i in range(busy)
    ]
    for thread in threads:
        thread.start()
    try:
        streaming.wait(timeout=600)
        other = [
            {**messages[0], "content": f"You are a careful archivist ({uuid.uuid4().hex})."},
            *messages[1:],
        ]
        seconds = {}
        for side in sides:
            if side == "cold":
                seconds[side] = ttft(client, other, uuid.uuid4().hex)
            else:
                seconds[side] = ttft(client, messages, cid)
        return seconds
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path)
    parser.add_argument("--history", type=int, default=2000, help="about this many tokens")
    parser.add_argument("--busy", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sides", default="warm,cold,server")
    args = parser.parse_args()
    sides = args.sides.split(",")
    if "server" in sides and not llama_side.available():
        print("without llama-server (make llama-server builds it)")
        sides.remove("server")
    times: dict[str, list[float]] = {side: [] for side in sides}
    slots, n_ctx = args.busy + 2, args.history * 2 + 512
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        model = model_path(args.model, work)
        (work / "models").mkdir()
        config = work / "corral.toml"
        config.write_text(
            f'default_model = "bench"\ndemo_model = false\n[models.bench]\npath = "{model.resolve()}"\n'
            f"n_ctx = {n_ctx}\nn_threads = {args.threads}\nparallel = {slots}\n"
        )
        print(f"model {model.name}, ~{args.history} tokens of history, {args.busy} busy streams, "
              f"{slots} slots of {n_ctx} tokens, {args.threads} threads, {args.rounds} rounds")  # fmt: skip
        servers: dict[str, httpx.Client] = {}
        if "server" in sides:
            servers["server"] = stack.enter_context(
                llama_side.running(model, slots=slots, n_ctx=n_ctx, threads=args.threads)
            )
        sup = Supervisor(data_dir=work / "data", models_dir=work / "models", config=config).start()
        stack.callback(sup.terminate)
        servers["corral"] = stack.enter_context(httpx.Client(base_url=sup.base_url, timeout=900))
        for client in servers.values():
            corral_stream(client, 0, 4)  # load the model
        history = FACT * max(1, args.history // 18)
        corral_sides = [side for side in sides if side != "server"]
        for round_ in range(args.rounds):
            order = ["corral", "server"] if round_ % 2 == 0 else ["server", "corral"]
            for name in [n for n in order if n in servers]:
                ours = corral_sides if round_ % 2 == 0 else corral_sides[::-1]
                measured = turn_two(
                    servers[name], history, args.busy, ours if name == "corral" else ["server"]
                )
                for side, seconds in measured.items():
                    times[side].append(seconds)
                    print(f"round {round_} {side}: {seconds * 1000:.0f} ms", flush=True)
    print(f"turn 2 TTFT with {args.busy} busy streams, ~{args.history} tokens of history (median):")
    labels = {
        "warm": "corral, kept in its slot",
        "cold": "corral, read again",
        "server": f"llama-server -np {slots}",
    }
    for side, seconds in times.items():
        runs = " ".join(f"{s * 1000:.0f}" for s in seconds)
        print(f"  {labels[side]:<26} {statistics.median(seconds) * 1000:8.1f} ms   ({runs})")
    if "warm" in times and "server" in times:
        ratio = statistics.median(times["warm"]) / statistics.median(times["server"])
        print(f"  ratio corral warm / llama-server: x{ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
