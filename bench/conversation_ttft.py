"""Time to first token of a conversation's next turn while other streams are busy: with its
KV kept in the model's slot (X-Conversation-Id) against the same turn read from scratch.

    .venv/bin/python bench/conversation_ttft.py [--model PATH] [--history 600] [--busy 7] [--rounds 3]

Each round: turn 1 of a fresh conversation with about --history tokens of history (cold), then
--busy other streams start, then turn 2 both ways, alternating which goes first: warm (same
conversation id, only the new turn is read) and cold (the same messages under a new system
line, so no prefix is shared). Same model, threads and prompts on both sides.
"""

from __future__ import annotations

import argparse
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

from bench.batching import corral_stream, model_path
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


def keep_busy(client: httpx.Client, i: int, stop: threading.Event) -> None:
    while not stop.is_set():
        corral_stream(client, i, 64)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path)
    parser.add_argument("--history", type=int, default=600, help="about this many tokens")
    parser.add_argument("--busy", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warm: list[float] = []
    cold: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = model_path(args.model, work)
        (work / "models").mkdir()
        config = work / "corral.toml"
        config.write_text(
            f'default_model = "bench"\ndemo_model = false\n[models.bench]\npath = "{model.resolve()}"\n'
            f"n_ctx = {args.history * 2 + 512}\nn_threads = {args.threads}\nparallel = {args.busy + 2}\n"
        )
        sup = Supervisor(data_dir=work / "data", models_dir=work / "models", config=config).start()
        stop = threading.Event()
        try:
            with httpx.Client(base_url=sup.base_url, timeout=900) as client:
                corral_stream(client, 0, 4)
                history = FACT * max(1, args.history // 18)
                for round_ in range(args.rounds):
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
                    stop.clear()
                    busy = [
                        threading.Thread(target=keep_busy, args=(client, i, stop))
                        for i in range(args.busy)
                    ]
                    for thread in busy:
                        thread.start()
                    time.sleep(1.0)  # a benchmark, not a test: let the busy streams get going
                    other = [
                        {
                            **messages[0],
                            "content": f"You are a careful archivist ({uuid.uuid4().hex}).",
                        },
                        *messages[1:],
                    ]
                    sides = [("warm", messages, cid), ("cold", other, uuid.uuid4().hex)]
                    for side, msgs, key in sides if round_ % 2 == 0 else sides[::-1]:
                        seconds = ttft(client, msgs, key)
                        (warm if side == "warm" else cold).append(seconds)
                    stop.set()
                    for thread in busy:
                        thread.join()
        finally:
            stop.set()
            sup.terminate()
    w, c = statistics.median(warm), statistics.median(cold)
    print(f"turn 2 TTFT with {args.busy} busy streams, ~{args.history} tokens of history:")
    print(
        f"  kept in its slot: {w * 1000:8.1f} ms   read again: {c * 1000:8.1f} ms   ratio x{c / w:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
